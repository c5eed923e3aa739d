"""What both adapters share: event times as RFC 3339, deterministic event ids, the run's tally."""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAYS: dict[int, str] = {}  # day number since the epoch -> "YYYY-MM-DDT": one strftime a day, not an event
MIN_EPOCH, MAX_EPOCH = 0, 253_370_764_800  # the decoder's accepted range (1970 to 9999-01-01), seconds


def rfc3339(epoch: int) -> str:
    """Whole epoch seconds to RFC 3339 UTC (`2026-11-23T09:00:05Z`); integer arithmetic, cached per day."""
    day, rest = divmod(epoch, 86400)
    prefix = _DAYS.get(day)
    if prefix is None:
        if len(_DAYS) > 4096:
            _DAYS.clear()
        prefix = _DAYS[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{prefix}{h:02d}:{m:02d}:{s:02d}Z"


def line_id(prefix: str, text: str) -> str:
    """An event id that depends only on the source line: re-reading the line (a restart, a replay of
    the same file, a rotated copy) gives the same ids, so the processor counts the events once."""
    return prefix + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


class Tally:
    """Counts of one run, for the summary the shell prints: read, produced, skipped by reason, adjusted."""

    def __init__(self) -> None:
        self.read = 0
        self.events = 0
        self.contacts = 0
        self.skipped: Counter[str] = Counter()
        self.adjusted: Counter[str] = Counter()

    def to_json(self) -> dict:
        return {"read": self.read, "events": self.events, "contacts": self.contacts,
                "skipped": dict(self.skipped), "adjusted": dict(self.adjusted)}

    @classmethod
    def from_json(cls, data: dict) -> "Tally":
        t = cls()
        t.read, t.events, t.contacts = int(data.get("read", 0)), int(data.get("events", 0)), int(data.get("contacts", 0))
        t.skipped.update(data.get("skipped", {}))
        t.adjusted.update(data.get("adjusted", {}))
        return t

    def lines(self, unit: str) -> list[str]:
        """The summary, a few lines of text."""
        skipped = sum(self.skipped.values())
        out = [f"{self.read:,} {unit} read, {self.contacts:,} contacts and {self.events:,} events produced, "
               f"{skipped:,} {unit} skipped"]
        for reason, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  skipped {n:,}: {reason}")
        for what, n in sorted(self.adjusted.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  adjusted {n:,}: {what}")
        return out


class Reorder:
    """Puts the events of per-call rows back in event-time order, in bounded memory.

    One row carries a whole call (arrival to end of service, minutes apart), so rows in arrival
    order give events out of order by the length of a call, far beyond the processor's allowed
    lateness. An event is held until the rows read have moved `window` seconds past it (rows may be
    out of arrival order by up to that much), then released in (time, lifecycle rank) order.
    """

    def __init__(self, window: int) -> None:
        import heapq

        from ..core.events import TYPE_RANK

        self._heap: list = []
        self._push, self._pop = heapq.heappush, heapq.heappop
        self._rank = TYPE_RANK
        self.window = window
        self._n = 0

    def push(self, events: list[dict], now: int) -> list[dict]:
        """Hold `events`; return those older than `now` (the latest arrival read) minus the window."""
        for e in events:
            self._n += 1
            self._push(self._heap, (e["ts"], self._rank.get(e["type"], 50), self._n, e))
        horizon = rfc3339(max(now - self.window, 0))
        out = []
        heap = self._heap
        while heap and heap[0][0] < horizon:
            out.append(self._pop(heap)[3])
        return out

    def drain(self) -> list[dict]:
        out = [self._pop(self._heap)[3] for _ in range(len(self._heap))]
        return out
