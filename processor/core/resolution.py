"""`resolution_day` and `retention_day`: the journey book's per-contact and per-customer contributions
summed per queue, channel and local day, and published once final (stage two).

Facts (from journeys.py, routed by queue):
  ("res", queue, channel, day_start, day_end, contacts, repeats, first, fcr, resolved, reopened)
  ("ret", queue, channel, day_start, day_end, churned within each horizon...)   one per customer
A day's resolution record is published once day end + W is behind the watermark, and its
retention record for horizon h once day end + h days is; both are corrected (version + 1) by
late changes until they expire (day end + W, or + the longest horizon, + retention).
"""
from __future__ import annotations

from collections import defaultdict

from .events import format_ts
from .figures import resolution_figures, retention_rate
from .profile import NO_QUEUE
from .publish import Publisher
from .settings import DAY_MS, EngineSettings

RESOLUTION_KINDS = frozenset({"res", "ret"})

Day = tuple[str, str, int]  # (queue, channel, local day start)


class DayEndIndex:
    """Ids (of facts, of customers) listed by a day end, so that expiry visits the days at or below
    its floor instead of everything held: a pass over everything at each day end held the worker's
    event loop for 0.3 s (resolution facts) and 0.55 s (journey customers) at 95 days of a simulated
    center. An id may be listed again, or still be listed after what it names changed or went:
    whoever pops it checks what it names now."""

    __slots__ = ("_by_end",)

    def __init__(self) -> None:
        self._by_end: dict[int, list[str]] = {}

    def add(self, day_end: int, item: str) -> None:
        listed = self._by_end.get(day_end)
        if listed is None:
            self._by_end[day_end] = [item]
        else:
            listed.append(item)

    def pop_through(self, floor: int) -> list[str]:
        """Every id listed under a day end at or below floor, unlisted."""
        out: list[str] = []
        for end in [e for e in self._by_end if e <= floor]:
            out.extend(self._by_end.pop(end))
        return out

    def __len__(self) -> int:
        return sum(len(listed) for listed in self._by_end.values())


class ResolutionBook:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, tuple] = {}
        self.days: dict[Day, list[int]] = {}       # -> [contacts, repeats, first, fcr, resolved, reopened]
        self.retained: dict[Day, list[int]] = {}   # -> [customers, churned within each horizon...]
        self.day_ends: dict[Day, int] = {}
        self.resolution = Publisher(self._resolution_record)
        self.retention = Publisher(self._retention_record)
        self.dirty_facts: set[str] = set()
        self._res_floor = -1
        self._ret_floor = -1
        self._window_ms = settings.recontact_window_ms  # settings are frozen: read once
        # The facts held by kind and day end (listed again when the day end changes)
        self._by_end: dict[str, DayEndIndex] = {"res": DayEndIndex(), "ret": DayEndIndex()}
        self._horizons = settings.retention_horizons_days

    def apply(self, fact_id: str, fact: tuple | None) -> None:
        old = self.facts.get(fact_id)
        if old == fact:
            return
        if old is None and fact is not None and fact[4] <= (self._res_floor if fact[0] == "res" else self._ret_floor):
            return  # that day was expired: final for good
        if old is not None:
            # the same kind and day again: the new fact's touch covers it (touches are idempotent)
            self._account(old, -1, fact is None or old[:5] != fact[:5])
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._account(fact, +1)
            if old is None or old[4] != fact[4] or old[0] != fact[0]:
                self._by_end[fact[0]].add(fact[4], fact_id)
        self.dirty_facts.add(fact_id)

    def _account(self, f: tuple, sign: int, touch: bool = True) -> None:
        day = (f[1], f[2], f[3])
        self.day_ends[day] = f[4]
        if f[0] == "res":
            counts = self.days.get(day)
            if counts is None:
                counts = self.days[day] = [0] * 6
            counts[0] += sign * f[5]
            counts[1] += sign * f[6]
            counts[2] += sign * f[7]
            counts[3] += sign * f[8]
            counts[4] += sign * f[9]
            counts[5] += sign * f[10]
            if touch:
                self.resolution.touch(day, f[4] + self._window_ms)
        else:
            counts = self.retained.get(day)
            if counts is None:
                counts = self.retained[day] = [0] * (1 + len(self._horizons))
            counts[0] += sign
            for k, v in enumerate(f[5:], 1):
                counts[k] += sign * v
            if touch:
                touch_key = self.retention.touch
                for h in self._horizons:
                    touch_key(day + (h,), f[4] + h * DAY_MS)

    # -- records -------------------------------------------------------------------------------
    def _common(self, kind: str, version: int, day: Day) -> dict:
        queue, channel, start = day
        tz = self.settings.queue(queue).time_zone if queue != NO_QUEUE else self.settings.default_queue.time_zone
        return {"kind": kind, "version": version, "interval_start": format_ts(start),
                "interval_end": format_ts(self.day_ends[day]), "queue_id": queue, "channel": channel, "time_zone": tz}

    def window_days(self) -> float | int:
        w = self.settings.recontact_window_ms / DAY_MS
        return int(w) if w == int(w) else w

    def _resolution_record(self, day: Day, version: int) -> dict | None:
        counts = self.days.get(day)
        if counts is None or counts[0] == 0:
            if version == 1:
                return None
            counts = counts or [0] * 6
        rec = self._common("resolution_day", version, day)
        rec.update(resolution_figures(*counts))
        rec["window_days"] = self.window_days()
        return rec

    def _retention_record(self, key: tuple, version: int) -> dict | None:
        day, h = key[:3], key[3]
        counts = self.retained.get(day)
        if counts is None or counts[0] == 0:
            if version == 1:
                return None
            counts = counts or [0] * (1 + len(self.settings.retention_horizons_days))
        k = 1 + self.settings.retention_horizons_days.index(h)
        rec = self._common("retention_day", version, day)
        rec.update({"horizon_days": h, "customers": counts[0], "churned": counts[k],
                    "retained": counts[0] - counts[k], "retention_rate": retention_rate(counts[0], counts[k])})
        return rec

    def advance(self, stream_ms: int) -> list[dict]:
        if stream_ms <= 0:
            return []
        watermark = stream_ms - self.settings.lateness_ms
        return self.resolution.advance(watermark) + self.retention.advance(watermark)

    def flush(self) -> list[dict]:
        return self.resolution.flush() + self.retention.flush()

    def provisional(self, stream_ms: int) -> dict[tuple[str, str], dict]:
        """The open window: per (queue, channel), the resolution figures summed over the days whose
        record is not final yet (day end + W not behind the watermark). What the gauges show."""
        watermark = stream_ms - self.settings.lateness_ms
        w = self.settings.recontact_window_ms
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 6)
        for day, counts in self.days.items():
            if self.day_ends[day] + w > watermark:
                s = sums[day[:2]]
                for k, v in enumerate(counts):
                    s[k] += v
        return {qc: resolution_figures(*s) for qc, s in sorted(sums.items()) if s[0] > 0}

    def expire(self, stream_ms: int) -> int:
        """A day goes once no event can change it any more: day end + W (or the longest horizon) + retention."""
        if stream_ms <= 0:
            return 0
        ret = self.settings.retention_ms
        longest = max(self.settings.retention_horizons_days, default=0) * DAY_MS
        self._res_floor = max(self._res_floor, stream_ms - self.settings.recontact_window_ms - ret)
        self._ret_floor = max(self._ret_floor, stream_ms - longest - ret)
        for day in [d for d in self.days if self.day_ends[d] <= self._res_floor]:
            del self.days[day]
            self.resolution.forget(day)
        for day in [d for d in self.retained if self.day_ends[d] <= self._ret_floor]:
            del self.retained[day]
            for h in self.settings.retention_horizons_days:
                self.retention.forget(day + (h,))
        facts, dropped = self.facts, 0
        for kind, floor in (("res", self._res_floor), ("ret", self._ret_floor)):
            for fid in self._by_end[kind].pop_through(floor):
                f = facts.get(fid)
                if f is not None and f[0] == kind and f[4] <= floor:
                    del facts[fid]
                    self.dirty_facts.add(fid)
                    dropped += 1
        for day in [d for d in self.day_ends if d not in self.days and d not in self.retained]:
            del self.day_ends[day]
        return dropped
