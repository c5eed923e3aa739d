"""Event time as the simulator writes it: integer milliseconds, its own RFC 3339 formatter, local
hours of a time zone and short base-36 ids, so the written times are exactly the recorded ones."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_ms(ts_ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with milliseconds and 'Z' (the simulator's own formatter)."""
    dt = _EPOCH + timedelta(milliseconds=ts_ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"



@lru_cache(maxsize=4096)
def local_hour(slot_ms: int, tz_name: str) -> int:
    return datetime.fromtimestamp(slot_ms / 1000, ZoneInfo(tz_name)).hour


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        n, r = divmod(n, 36)
        s = digits[r] + s
        if not n:
            return s
