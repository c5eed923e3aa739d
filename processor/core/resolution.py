"""`resolution_day` and `retention_day`: the journey book's per-contact and per-customer contributions
summed per queue, channel and local day, and published once final (stage two).

Facts (from journeys.py, routed by queue):
  ("res", queue, channel, day_start, day_end, contacts, repeats, first, fcr, resolved, reopened[, unidentified])
  ("ret", queue, channel, day_start, day_end, churned within each horizon...[, unidentified])   one per customer
The optional last field is 1 for the one contact of an unidentified customer the fact stands for
(its other counts are 0, and a "ret" fact of one counts no customer): `unidentified_contacts`.
A day's resolution record is published once day end + W is behind the watermark, and its
retention record for horizon h once day end + h days is; both are corrected (version + 1) by
late changes until they expire (day end + W, or + the longest horizon, + retention).
"""
from __future__ import annotations

import heapq
from collections import defaultdict

from .events import format_ts
from .figures import resolution_figures, retention_rate
from .profile import NO_QUEUE
from .publish import Publisher
from .settings import DAY_MS, EngineSettings

RESOLUTION_KINDS = frozenset({"res", "ret"})

Day = tuple[str, str, int]  # (queue, channel, local day start)


class ResolutionBook:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, tuple] = {}
        self.days: dict[Day, list[int]] = {}       # -> [contacts, repeats, first, fcr, resolved, reopened, unidentified]
        self.retained: dict[Day, list[int]] = {}   # -> [customers, churned within each horizon..., unidentified]
        self.day_ends: dict[Day, int] = {}
        self.resolution = Publisher(self._resolution_record)
        self.retention = Publisher(self._retention_record)
        self.dirty_facts: set[str] = set()
        self._res_floor = -1
        self._ret_floor = -1
        self._window_ms = settings.recontact_window_ms  # settings are frozen: read once
        # The facts held, and the days, by kind and day end (a fact listed again when its day end
        # changes): expiry visits what is due, not everything held. Entries of facts changed or
        # gone since are skipped when they come up.
        self._by_end: dict[str, list[tuple]] = {"res": [], "ret": []}
        self._days_by_end: dict[str, list[tuple]] = {"res": [], "ret": []}
        self._horizons = settings.retention_horizons_days
        self._nh = len(self._horizons)
        self._pass_open = False  # a housekeeping pass in slices (expire(limit=...)) under way: floors fixed

    def apply(self, fact_id: str, fact: tuple | None) -> None:
        old = self.facts.get(fact_id)
        if old is not None and old[4] <= (self._res_floor if old[0] == "res" else self._ret_floor):
            # due in the pass under way, not dropped yet: what the pass would have done first
            del self.facts[fact_id]
            self.dirty_facts.add(fact_id)
            old = None
        if fact is not None and fact[4] <= (self._res_floor if fact[0] == "res" else self._ret_floor):
            # that day was expired: final for good. A new fact is ignored; a fact moved there leaves
            # its old day and counts nowhere (a day published again after its expiry would restart
            # at version 1, and whether it is depended on when the pass that expires it has ended)
            fact = None
        if old == fact:
            return
        if old is not None:
            # the same kind and day again: the new fact's touch covers it (touches are idempotent)
            self._account(old, -1, fact is None or old[:5] != fact[:5])
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._account(fact, +1)
            if old is None or old[4] != fact[4] or old[0] != fact[0]:
                heapq.heappush(self._by_end[fact[0]], (fact[4], fact_id))
        self.dirty_facts.add(fact_id)

    def _account(self, f: tuple, sign: int, touch: bool = True) -> None:
        day = (f[1], f[2], f[3])
        self.day_ends[day] = f[4]
        if f[0] == "res":
            counts = self.days.get(day)
            if counts is None:
                counts = self.days[day] = [0] * 7
                heapq.heappush(self._days_by_end["res"], (f[4], day))
            counts[0] += sign * f[5]
            counts[1] += sign * f[6]
            counts[2] += sign * f[7]
            counts[3] += sign * f[8]
            counts[4] += sign * f[9]
            counts[5] += sign * f[10]
            if len(f) > 11:
                counts[6] += sign * f[11]
            if touch:
                self.resolution.touch(day, f[4] + self._window_ms)
        else:
            nh = self._nh
            counts = self.retained.get(day)
            if counts is None:
                counts = self.retained[day] = [0] * (2 + nh)
                heapq.heappush(self._days_by_end["ret"], (f[4], day))
            unidentified = f[5 + nh] if len(f) > 5 + nh else 0
            counts[0] += sign * (1 - unidentified)
            for k in range(nh):
                counts[k + 1] += sign * f[5 + k]
            counts[nh + 1] += sign * unidentified
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
        if counts is None or (counts[0] == 0 and counts[6] == 0):
            if version == 1:
                return None
            counts = counts or [0] * 7
        rec = self._common("resolution_day", version, day)
        rec.update(resolution_figures(*counts[:6]))
        rec["window_days"] = self.window_days()
        rec["unidentified_contacts"] = counts[6]
        return rec

    def _retention_record(self, key: tuple, version: int) -> dict | None:
        day, h = key[:3], key[3]
        counts = self.retained.get(day)
        if counts is None or (counts[0] == 0 and counts[-1] == 0):
            if version == 1:
                return None
            counts = counts or [0] * (2 + self._nh)
        k = 1 + self.settings.retention_horizons_days.index(h)
        rec = self._common("retention_day", version, day)
        rec.update({"horizon_days": h, "customers": counts[0], "churned": counts[k],
                    "retained": counts[0] - counts[k], "retention_rate": retention_rate(counts[0], counts[k]),
                    "unidentified_contacts": counts[-1]})
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
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 7)
        for day, counts in self.days.items():
            if self.day_ends[day] + w > watermark:
                s = sums[day[:2]]
                for k, v in enumerate(counts):
                    s[k] += v
        return {qc: {**resolution_figures(*s[:6]), "unidentified_contacts": s[6]}
                for qc, s in sorted(sums.items()) if s[0] > 0 or s[6] > 0}

    def expire(self, stream_ms: int, limit: int | None = None) -> int:
        """A day goes once no event can change it any more: day end + W (or the longest horizon) + retention.

        Visits the days and facts due (by their day-end indexes), at most `limit` of them; returns how
        many it visited (equal to `limit`: the pass is not over, call again). A pass fixes its floors
        when it starts: a fact due but not dropped yet is dropped when a change comes for it, as it
        would have been had the pass run whole."""
        if stream_ms <= 0:
            return 0
        if not self._pass_open:
            ret = self.settings.retention_ms
            longest = max(self.settings.retention_horizons_days, default=0) * DAY_MS
            self._res_floor = max(self._res_floor, stream_ms - self.settings.recontact_window_ms - ret)
            self._ret_floor = max(self._ret_floor, stream_ms - longest - ret)
            self._pass_open = True
        budget = limit if limit is not None else -1
        done = 0
        facts = self.facts
        for kind, floor in (("res", self._res_floor), ("ret", self._ret_floor)):
            days = self.days if kind == "res" else self.retained
            heap = self._days_by_end[kind]
            while heap and heap[0][0] <= floor:
                if done == budget:
                    return done
                _, day = heapq.heappop(heap)
                done += 1
                if days.pop(day, None) is None:
                    continue
                if kind == "res":
                    self.resolution.forget(day)
                else:
                    for h in self._horizons:
                        self.retention.forget(day + (h,))
                if day not in self.days and day not in self.retained:
                    self.day_ends.pop(day, None)
            heap = self._by_end[kind]
            while heap and heap[0][0] <= floor:
                if done == budget:
                    return done
                _, fid = heapq.heappop(heap)
                done += 1
                f = facts.get(fid)
                if f is not None and f[0] == kind and f[4] <= floor:
                    del facts[fid]
                    self.dirty_facts.add(fid)
        self._pass_open = False
        return done
