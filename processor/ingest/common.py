"""What both adapters share: event times as RFC 3339, deterministic event ids, the run's tally."""
from __future__ import annotations

import hashlib
import operator
from collections import Counter
from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MINUTES: dict[int, str] = {}  # minute since the epoch -> "YYYY-MM-DDThh:mm:" (one format a minute)
_SECONDS = tuple(f"{s:02d}Z" for s in range(60))
STAMPS: dict[int, str] = {}  # epoch second -> its RFC 3339 text (events of nearby calls share seconds)
MIN_EPOCH, MAX_EPOCH = 0, 253_370_764_800  # the decoder's accepted range (1970 to 9999-01-01), seconds


def rfc3339(epoch: int) -> str:
    """Whole epoch seconds to RFC 3339 UTC (`2026-11-23T09:00:05Z`). A hot path: callers look in
    `STAMPS` first (`STAMPS.get(t) or rfc3339(t)`); this fills it, a minute's prefix formatted once."""
    stamp = STAMPS.get(epoch)
    if stamp is None:
        minute, second = divmod(epoch, 60)
        prefix = _MINUTES.get(minute)
        if prefix is None:
            if len(_MINUTES) > 100_000:
                _MINUTES.clear()
            prefix = _MINUTES[minute] = (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")
        if len(STAMPS) > 200_000:
            STAMPS.clear()
        stamp = STAMPS[epoch] = prefix + _SECONDS[second]
    return stamp


def stamp_ms(epoch_ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with milliseconds (`2026-11-23T09:00:05.001Z`)."""
    second, ms = divmod(epoch_ms, 1000)
    return f"{rfc3339(second)[:-1]}.{ms:03d}Z"


_ID_HASH = hashlib.blake2b(digest_size=10)  # copied for each id: half the cost of building one (~1 us)


def line_id(prefix: str, text: str) -> str:
    """An event id that depends only on the source line: re-reading the line (a restart, a replay of
    the same file, a rotated copy) gives the same ids, so the processor counts the events once."""
    h = _ID_HASH.copy()
    h.update(text.encode("utf-8", "surrogatepass"))
    return prefix + h.hexdigest()


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
    lateness. An event is held until the rows read have moved `window` seconds past its minute
    (rows may be out of arrival order by up to that much), then released in time order (a row's
    own events in the order the row gave them). Events are held as (epoch second, event) pairs in
    one list per minute: a minute is released by a stable sort of its list on the second.
    """

    def __init__(self, window: int) -> None:
        import heapq

        self._held: dict[int, list] = {}  # minute since the epoch -> its (second, event) pairs, as pushed
        self._minutes: list[int] = []  # heap of the held minutes
        self._push, self._pop = heapq.heappush, heapq.heappop
        self.window = window

    def push(self, events: list[dict], now: int) -> list[dict]:
        """Hold `events` (dicts with an RFC 3339 `ts`); return those whose minute is over `window`
        seconds before `now` (the latest arrival read)."""
        from ..core.events import parse_ts_ms

        return self.push_timed([(parse_ts_ms(e["ts"]) / 1000, e) for e in events], now)

    def push_timed(self, items: list[tuple], now: int) -> list:
        """`push` for (epoch second, event) pairs, the event in any form (the CSV adapter's JSON
        lines); returns the events released, without their times."""
        held = self._held
        for item in items:
            minute = item[0] // 60
            bucket = held.get(minute)
            if bucket is None:
                held[minute] = [item]
                self._push(self._minutes, minute)
            else:
                bucket.append(item)
        horizon = max(now - self.window, 0) // 60
        minutes = self._minutes
        if not minutes or minutes[0] >= horizon:
            return []
        out: list = []
        while minutes and minutes[0] < horizon:
            out += self._release(self._pop(minutes))
        return out

    def _release(self, minute) -> list:
        bucket = self._held.pop(minute)
        bucket.sort(key=_FIRST)  # stable: one second's events stay in the order pushed
        return [item[1] for item in bucket]

    def drain(self) -> list:
        """Everything still held, in order (at the end of the file)."""
        out: list = []
        while self._minutes:
            out += self._release(self._pop(self._minutes))
        return out


_FIRST = operator.itemgetter(0)
