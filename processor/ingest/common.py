"""What both adapters share: event times as RFC 3339, deterministic event ids, the run's tally."""
from __future__ import annotations

import hashlib
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
    own events in the order the row gave them). Events are held in one list per second of event
    time (its RFC 3339 stamp, whose hash the shared stamp object keeps), grouped by minute: a
    minute is released by sorting its few seconds, not its events, which is the stable sort of its
    events by time.
    """

    def __init__(self, window: int) -> None:
        import heapq

        self._seconds: dict[str, list[dict]] = {}  # "YYYY-MM-DDThh:mm:ssZ" -> its events, as pushed
        self._buckets: dict[str, list[str]] = {}  # "YYYY-MM-DDThh:mm" -> the seconds held in it
        self._minutes: list[str] = []  # heap of the buckets' minutes
        self._push, self._pop = heapq.heappush, heapq.heappop
        self.window = window
        self._edge: int | None = None  # the minute of (latest arrival - window), as an int
        self._horizon = ""

    def push(self, events: list[dict], now: int) -> list[dict]:
        """Hold `events`; return those whose minute is over `window` seconds before `now` (the latest
        arrival read)."""
        seconds = self._seconds
        for e in events:
            ts = e["ts"]
            held = seconds.get(ts)
            if held is None:
                seconds[ts] = [e]
                minute = ts[:16]
                bucket = self._buckets.get(minute)
                if bucket is None:
                    self._buckets[minute] = [ts]
                    self._push(self._minutes, minute)
                else:
                    bucket.append(ts)
            else:
                held.append(e)
        edge = max(now - self.window, 0) // 60
        if edge != self._edge:  # the horizon moves only with the latest arrival's minute
            self._edge = edge
            self._horizon = rfc3339(edge * 60)[:16]
        minutes = self._minutes
        if not minutes or minutes[0] >= self._horizon:
            return []
        out: list[dict] = []
        while minutes and minutes[0] < self._horizon:
            out += self._release(self._pop(minutes))
        return out

    def _release(self, minute: str) -> list[dict]:
        seconds = self._seconds
        out: list[dict] = []
        for ts in sorted(self._buckets.pop(minute)):
            out += seconds.pop(ts)
        return out

    def drain(self) -> list[dict]:
        """Everything still held, in order (at the end of the file)."""
        out: list[dict] = []
        while self._minutes:
            out += self._release(self._pop(self._minutes))
        return out
