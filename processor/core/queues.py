"""Stage two: per-queue state built from facts, keyed by queue so a worker owns whole queues.

Holds the facts themselves (the source of truth, replaced by id), and from them additive
buckets: one-minute buckets for the rolling windows and interval buckets for the rollups.
Rollup records are published once stream time minus the lateness passes an interval's end,
and republished with version + 1 whenever a later fact changes a published record.

Stale contacts: a segment not ended carries the instant at which its contact goes stale (see
segments.py). Once the watermark (stream time - lateness) is past it, advance() takes it out of the
waiting segments (queue depth, longest wait) and counts it in `stale` (once per segment); expire()
drops it like an ended segment once that instant is below the retention floor. No bucket ever
holds it: interval figures and records do not change.
"""
from __future__ import annotations

import bisect
import hashlib
import heapq
import json
from datetime import datetime
from typing import Any, Callable

from .agents import AGENT_KINDS, FLOOR_SUFFIX, AgentBook
from .events import format_ts
from .experience import EXPERIENCE_KINDS, ExperienceBook
from .figures import segment_figures
from .publish import Publisher, SourceClock, publish_changed, take_keys
from .resolution import RESOLUTION_KINDS, ResolutionBook
from .segments import Fact, fact_from_json
from .settings import MINUTE_MS, EngineSettings, zone
from .staffing import apt_id, interval_staffing
from .stats import SegmentStats, WaitHistogram

WINDOWS = {"5m": 5, "15m": 15, "60m": 60}  # rolling windows, in one-minute buckets

QC = tuple[str, str]  # (queue_id, channel)


def local_midnight_ms(ts_ms: int, tz_name: str) -> int:
    """Start of the local calendar day containing ts_ms, in the queue's time zone."""
    tz = zone(tz_name)
    local = datetime.fromtimestamp(ts_ms / 1000, tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    return int(midnight.timestamp()) * 1000


def _digest(record: dict) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "version"}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(body.encode(), digest_size=8).hexdigest()


class QueueBook(SourceClock):
    """Stage-two state of one partition (any number of queues).

    Also the entry point of the partition's other books: experience facts (routed by queue) go to
    `experience`, agent facts (routed by agent) to `agent_book`, resolution and retention
    contributions (routed by queue, from the journey book) to `resolution`; `apply`, `advance`,
    `expire`, `take_dirty` and the restores dispatch on the fact kind, so the shell handles one
    book, one facts table and one published table per partition.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, Fact] = {}
        self.open: dict[QC, dict[str, int]] = {}          # waiting segments: fact id -> start
        # Segments not ended and not stale yet that have a staleness instant: a heap of (stale ms, fact id),
        # checked against `_stale_at` (fact id -> (stale ms, qc)), which drops entries that changed.
        self._stale_heap: list[tuple[int, str]] = []
        self._stale_at: dict[str, tuple[int, QC]] = {}
        self._stale_ids: set[str] = set()                 # held segments already counted as stale
        self.stale: dict[QC, int] = {}                     # segments given up as stale (counter, since this book was built)
        self.minutes: dict[QC, dict[int, SegmentStats]] = {}
        self.intervals: dict[QC, dict[int, SegmentStats]] = {}
        self.agents: dict[str, dict[str, str]] = {}        # queue -> agent -> state
        self.agent_capacity: dict[str, dict[str, int]] = {}  # queue -> agent -> concurrent contacts (1 if not given)
        # queue -> agent -> [(since, state)], latest last: presence history for staffed time (cost per contact)
        self.presence: dict[str, dict[str, list[tuple[int, str]]]] = {}
        # queue -> agent -> sorted [(ts, event id, state)] from "apt" facts, one per agent.state_changed whatever
        # its arrival order: the timeline behind queue_interval `staffed_agents` (see core/staffing.py)
        self.timelines: dict[str, dict[str, list[tuple[int, str, str]]]] = {}
        self.experience = ExperienceBook(settings)
        self.agent_book = AgentBook(settings)
        self.resolution = ResolutionBook(settings)
        self.wait_histograms: dict[QC, WaitHistogram] = {}  # cumulative since this book was built
        self.published: dict[tuple[str, str, int], list] = {}  # (queue, channel, start) -> [version, digest]
        self.init_clock()  # stream_ms, latest_ms, sources, heard; the shell sets expected_sources
        self.dirty_facts: set[str] = set()
        self.dirty_published: set[tuple[str, str, int]] = set()
        self._changed_closed: set[tuple[str, str, int]] = set()
        # advance(limit) cut into slices: the closed intervals to publish, in order, last first (a key
        # stays in _changed_closed until it is published)
        self._closed_work: list[tuple[str, str, int]] = []
        # Intervals never published yet, and the earliest start among them: advance() looks at
        # them only when the watermark has passed that start, not on every message.
        self._pending: set[tuple[str, str, int]] = set()
        self._next_close: Any = float("inf")  # an interval start, or inf (Any: kept as it is, compiled)
        self._floor: dict[str, int] = {}  # queue -> end time below which facts were expired
        self._floors_moved = False        # by expire(), since the last take_dirty (see _floor_rows)
        # An expiry pass cut into slices (expire(limit)): (facts found below the floors, floors, default
        # floor) while one is under way, else None; the floors when it began; whether its tidying is done.
        self._expiring: Any = None
        self._floors_before: tuple = ()
        self._expiry_tidied = False
        self._timeline_work: list[tuple[str, str]] = []  # (queue, agent) timelines this pass has still to visit, last first
        # queue -> heap of (end ms, fact id) of its ended segments and legs and of its segments that go
        # stale: an expiry pass pops what is below the floor instead of scanning every fact. Lazy deletion:
        # an entry whose fact is gone or now ends at another time is skipped (the fact pushed a new one).
        self._end_heaps: dict[str, list[tuple[int, str]]] = {}
        self._end_entries = 0  # entries in all of them (rebuilt from the facts when mostly stale)
        self._interval_ms = settings.interval_ms  # settings are frozen: read once
        self._lateness_ms = settings.lateness_ms
        # fact kind -> the book that holds facts of that kind (absent: this book's own seg / leg / agent)
        # A lower bound of the watermark (stream time - lateness) at which advance() may have something
        # to do: raised by advance() to the exact value, lowered by every change that can make a record
        # due (here and by the other books' publishers, which share it). Below it advance() returns at once.
        self._alarm: list[Any] = [float("-inf")]
        for publisher in (self.experience.publisher, self.agent_book.publisher, self.resolution.resolution,
                          self.resolution.retention):
            publisher.alarm = self._alarm
        self._subs: dict[str, Any] = {**{k: self.experience for k in EXPERIENCE_KINDS}, **{k: self.agent_book for k in AGENT_KINDS},
                      **{k: self.resolution for k in RESOLUTION_KINDS}}

    # -- facts -----------------------------------------------------------------
    def apply(self, fact_id: str, fact: Fact | None, route: str | None = None) -> None:
        """Upsert (or delete, with None) one fact. Re-applying the same fact changes nothing.

        A delete names the route (queue, agent) the fact was on: it deletes only a fact still on
        that route, so a fact that moved to another route of this partition stays, whatever the
        order the delete and the upsert arrived in.
        """
        if fact is not None:
            sub = self._subs.get(fact[0])  # _sub_book, inlined for the common case
        else:
            sub = self._sub_book(fact_id, fact)
            if route is not None:
                stored = (sub.facts if sub is not None else self.facts).get(fact_id)
                if stored is None or stored[1] != route:
                    return
        if sub is not None:
            sub.apply(fact_id, fact)
            return
        old = self.facts.get(fact_id)
        if old == fact:
            return
        if old is None and fact is not None:
            end = _end_ms(fact)  # None for open segments and agent presence: never below the floor
            if end is not None and end < self._floor.get(fact[1], -1):
                return  # its interval was already expired; stage one dead-letters such events as too late
        if old is not None:
            self._account(fact_id, old, -1)
        if fact is None:
            del self.facts[fact_id]
            self._stale_ids.discard(fact_id)
            if old is not None and old[0] == "agent":  # the agent no longer serves the queue
                self.presence.get(old[1], {}).pop(old[2], None)
        else:
            self.facts[fact_id] = fact
            self._account(fact_id, fact, +1)
            end = _end_ms(fact)
            if end is not None and (old is None or _end_ms(old) != end):
                heap = self._end_heaps.get(fact[1])
                if heap is None:
                    heap = self._end_heaps[fact[1]] = []
                heapq.heappush(heap, (end, fact_id))
                self._end_entries += 1
                if self._end_entries > 2 * len(self.facts) + 1024:  # mostly entries of facts changed or gone
                    self._rebuild_end_heaps()
        self.dirty_facts.add(fact_id)

    def apply_all(self, deltas) -> None:
        """apply() each (fact id, route, fact) in order; upserts of the other books' kinds go straight to them."""
        subs, apply = self._subs, self.apply
        for fact_id, route, fact in deltas:
            if fact is not None:
                sub = subs.get(fact[0])
                if sub is not None:
                    sub.apply(fact_id, fact)
                    continue
            apply(fact_id, fact, route)

    def _sub_book(self, fact_id: str, fact: Fact | None):
        if fact is not None:
            kind = fact[0]
            if kind in EXPERIENCE_KINDS:
                return self.experience
            if kind in AGENT_KINDS:
                return self.agent_book
            if kind in RESOLUTION_KINDS:
                return self.resolution
            return None
        for sub in (self.experience, self.agent_book, self.resolution):
            if fact_id in sub.facts:
                return sub
        return None

    def _account(self, fid: str, f: Fact, sign: int) -> None:
        kind = f[0]
        if kind == "seg":
            queue, channel, start, end, outcome = f[1], f[2], f[3], f[4], f[5]
            qc = (queue, channel)
            if end is None:
                opened = self.open.setdefault(qc, {})
                stale_ms = f[6] if len(f) > 6 else None
                if sign > 0:
                    opened[fid] = start
                    if stale_ms is not None:
                        self._stale_at[fid] = (stale_ms, qc)
                        heap = self._stale_heap
                        heapq.heappush(heap, (stale_ms, fid))
                        if len(heap) > 2 * len(self._stale_at) + 1024:  # mostly entries of segments that ended
                            heap[:] = [(at, i) for i, (at, _) in self._stale_at.items()]
                            heapq.heapify(heap)
                        if stale_ms + 1 < self._alarm[0]:  # stale once the watermark is past it
                            self._alarm[0] = stale_ms + 1
                else:
                    opened.pop(fid, None)
                    self._stale_at.pop(fid, None)
                return
            q = self.settings.queue(queue)
            wait = end - start
            for bucket in self._buckets(qc, end):
                bucket.add_segment(outcome, wait, q, sign)
            hist = self.wait_histograms.get(qc)
            if hist is None:
                hist = self.wait_histograms[qc] = WaitHistogram()
            hist.add(wait, sign)
            self._touch(qc, end)
        elif kind == "leg":
            _, queue, channel, end, talk, hold, acw = f
            qc = (queue, channel)
            for bucket in self._buckets(qc, end):
                bucket.add_leg(talk, hold, acw, sign)
            self._touch(qc, end)
        elif kind == "apt":
            timeline = self.timelines.setdefault(f[1], {}).setdefault(f[2], [])
            point = (f[3], f[4], f[5])
            i = bisect.bisect_left(timeline, point)
            present = i < len(timeline) and timeline[i] == point
            if sign > 0 and not present:
                timeline.insert(i, point)
            elif sign < 0 and present:
                del timeline[i]
        elif kind == "agent":
            queue, agent, state, since = f[1], f[2], f[3], f[4]
            capacity = f[5] if len(f) > 5 and f[5] is not None else 1
            members = self.agents.setdefault(queue, {})
            caps = self.agent_capacity.setdefault(queue, {})
            if sign > 0:
                members[agent] = state
                caps[agent] = capacity
                history = self.presence.setdefault(queue, {}).setdefault(agent, [])
                if not history or since > history[-1][0]:
                    history.append((since, state))
                elif since == history[-1][0]:
                    history[-1] = (since, state)
            else:
                members.pop(agent, None)
                caps.pop(agent, None)

    def _buckets(self, qc: QC, end_ms: int) -> tuple[SegmentStats, SegmentStats]:
        minute = end_ms - end_ms % MINUTE_MS
        iv = self._interval_ms
        interval = end_ms - end_ms % iv
        m = self.minutes.setdefault(qc, {})
        i = self.intervals.setdefault(qc, {})
        mb = m.get(minute)
        if mb is None:
            mb = m[minute] = SegmentStats()
        ib = i.get(interval)
        if ib is None:
            ib = i[interval] = SegmentStats()
            key = (qc[0], qc[1], interval)
            if key not in self.published:
                self._pending.add(key)
                if interval < self._next_close:
                    self._next_close = interval
                    if interval + iv < self._alarm[0]:
                        self._alarm[0] = interval + iv
        return mb, ib

    def _touch(self, qc: QC, end_ms: int) -> None:
        start = end_ms - end_ms % self._interval_ms
        key = (qc[0], qc[1], start)
        if key in self.published:
            self._changed_closed.add(key)
            self._alarm[0] = float("-inf")

    # -- rollups ---------------------------------------------------------------
    def interval_record(self, queue: str, channel: str, start: int, version: int) -> dict:
        s = self.intervals.get((queue, channel), {}).get(start) or SegmentStats()
        q = self.settings.queue(queue)
        rec = {
            "kind": "queue_interval",
            "version": version,
            "interval_start": format_ts(start),
            "interval_end": format_ts(start + self.settings.interval_ms),
            "queue_id": queue,
            "channel": channel,
            "threshold_seconds": q.threshold_seconds,
            "short_abandon_seconds": q.short_abandon_seconds,
            "service_level_target": q.service_level_target,
        }
        rec.update(segment_figures(s))
        rec.update(interval_staffing(s, q, self._interval_ms, self.agents.get(queue, {}),
                                     self.agent_capacity.get(queue, {}), self.timelines.get(queue), start))
        return rec

    def advance(self, limit: int | None = None) -> list[dict]:
        """Records due now: intervals newly closed by stream time, and corrections of published ones.

        With `limit`, at most about that many records are built (a day close publishes every agent
        interval and resolution day at once); `advancing` then says whether to call again (before
        any other change to the book). Cut into any slices, the records (in order) and the book at
        the end are those of one whole call."""
        if self.stream_ms - self._lateness_ms < self._alarm[0]:
            return []  # nothing can be due yet (see _alarm)
        if not self._anything_due():
            self._set_alarm()
            return []
        out = self._advance(-1 if limit is None else max(limit, 1))
        self._set_alarm()
        return out

    @property
    def advancing(self) -> bool:
        """A publication cut by advance(limit) is not over."""
        if self._changed_closed or self.experience.publisher.changed:
            return True
        if self.stream_ms <= 0:
            # The agent and resolution books publish nothing before the clock starts (as in
            # _anything_due): their changed keys wait for it. Saying "call again" here made the
            # worker's publication loop spin for good after a rebuild, holding stage two's lock.
            return False
        return any(p.changed for p in (self.agent_book.publisher, self.resolution.resolution,
                                       self.resolution.retention))

    def _set_alarm(self) -> None:
        """The exact watermark from which _anything_due() holds, as things stand (see _anything_due)."""
        neg_inf: Any = float("-inf")
        ab = self.agent_book
        if self._changed_closed or ab._closed is None or self.stream_ms <= 0:
            self._alarm[0] = neg_inf
            return
        at = min(self._next_close + self._interval_ms, ab._closed + 2 * self._interval_ms)
        stale_ms = self._next_stale()
        if stale_ms is not None and stale_ms + 1 < at:
            at = stale_ms + 1
        for p in (self.experience.publisher, ab.publisher, self.resolution.resolution, self.resolution.retention):
            if p.changed:
                at = neg_inf
                break
            if p.next_due < at:
                at = p.next_due
        self._alarm[0] = at

    def _advance(self, budget: int) -> list[dict]:
        """Each part in turn, each resumable: a part left unfinished (budget used up) stops the call;
        the next call finds the parts before it with nothing to do."""
        self._go_stale()
        out: list[dict] = []
        closed_before = self.stream_ms - self.settings.lateness_ms - self.settings.interval_ms
        if closed_before >= self._next_close:
            due = [key for key in self._pending if key[2] <= closed_before]
            self._pending.difference_update(due)
            self._changed_closed.update(key for key in due if key not in self.published)
            self._next_close = min((key[2] for key in self._pending), default=float("inf"))
        budget = publish_changed(self._changed_closed, self._closed_work, self._publish, out, budget)
        if self._changed_closed:
            return out
        limit = None if budget < 0 else budget
        # The other books' publishers in turn, each given what is left of the limit. The resolution
        # book's two are sliced here (as ResolutionBook.advance, which does nothing before the clock starts).
        parts: list[tuple[Publisher, Callable[[int, int | None], list[dict]], int]] = [
            (self.experience.publisher, self.experience.advance, self.stream_ms),
            (self.agent_book.publisher, self.agent_book.advance, self.stream_ms)]
        if self.stream_ms > 0:
            watermark = self.stream_ms - self._lateness_ms
            parts += [(p, p.advance, watermark) for p in (self.resolution.resolution, self.resolution.retention)]
        for p, advance, at in parts:
            out += advance(at, limit)  # (a limit of 0 still takes in what is due: `advancing`)
            if p.changed:
                return out
            if limit is not None:
                limit -= p.visited
        return out

    def _anything_due(self) -> bool:
        """Whether advance() can publish anything or move any state: the exact conditions under which each
        book's advance does something (called on every message, so checked here in one place, cheaply)."""
        stream_ms = self.stream_ms
        watermark = stream_ms - self._lateness_ms
        if self._changed_closed or watermark - self._interval_ms >= self._next_close:
            return True
        stale_ms = self._next_stale()
        if stale_ms is not None and watermark > stale_ms:
            return True
        p = self.experience.publisher
        if p.changed or watermark >= p.next_due:
            return True
        if stream_ms <= 0:  # the agent and resolution books do nothing before the clock starts
            return False
        ab = self.agent_book
        p = ab.publisher
        if p.changed or watermark >= p.next_due or ab._closed is None or \
                watermark - watermark % self._interval_ms - self._interval_ms > ab._closed:
            return True
        r = self.resolution
        p = r.resolution
        if p.changed or watermark >= p.next_due:
            return True
        p = r.retention
        return bool(p.changed) or watermark >= p.next_due

    def _next_stale(self) -> int | None:
        """The earliest staleness instant of a segment still waiting (entries of segments that ended or
        changed since are dropped from the top of the heap: most segments end long before theirs)."""
        heap, at = self._stale_heap, self._stale_at
        while heap:
            stale_ms, fid = heap[0]
            entry = at.get(fid)
            if entry is not None and entry[0] == stale_ms:
                return stale_ms
            heapq.heappop(heap)
        return None

    def _go_stale(self) -> None:
        """Segments whose staleness instant the watermark has passed leave the waiting ones, counted once.
        Decided by the watermark alone (called by advance, and by expire before it drops anything)."""
        heap = self._stale_heap
        if not heap or self.stream_ms <= 0:
            return
        watermark = self.stream_ms - self._lateness_ms
        while heap and heap[0][0] < watermark:
            stale_ms, fid = heapq.heappop(heap)
            entry = self._stale_at.get(fid)
            if entry is None or entry[0] != stale_ms:
                continue  # the segment ended, changed or left since
            del self._stale_at[fid]
            qc = entry[1]
            self.open.get(qc, {}).pop(fid, None)
            if fid not in self._stale_ids:
                self._stale_ids.add(fid)
                self.stale[qc] = self.stale.get(qc, 0) + 1

    def _publish(self, key: tuple[str, str, int]) -> dict | None:
        prev = self.published.get(key)
        rec = self.interval_record(*key, version=(prev[0] + 1) if prev else 1)
        digest = _digest(rec)
        if prev is not None and prev[1] == digest:
            return None
        if prev is None and rec["offered"] == 0 and rec["handled"] == 0:
            return None  # a bucket emptied by retractions before it was ever published
        self.published[key] = [rec["version"], digest]
        self.dirty_published.add(key)
        return rec

    def flush_all(self) -> list[dict]:
        """End of input (replay): publish every interval not yet published, as if the watermark were +inf
        (agents: up to the interval holding stream time, AgentBook.flush)."""
        self._changed_closed.update(key for key in self._pending if key not in self.published)
        self._pending.clear()
        self._next_close = float("inf")
        self._alarm[0] = float("-inf")
        out = self.advance()
        out += self.experience.flush()
        out += self.agent_book.flush(self.latest_ms)
        out += self.resolution.flush()
        return out

    # -- live view -------------------------------------------------------------
    def queues(self) -> list[QC]:
        keys = set(self.open) | set(self.minutes) | set(self.intervals)
        return sorted(keys)

    def window_stats(self, qc: QC, window: str, now_ms: int) -> SegmentStats:
        """Sum of buckets in a rolling window ending now (one-minute granularity), or since local midnight."""
        total = SegmentStats()
        if window == "today":
            since = local_midnight_ms(now_ms, self.settings.queue(qc[0]).time_zone)
            _sum_range(total, self.intervals.get(qc), since, now_ms, self._interval_ms)
            return total
        this_minute = now_ms - now_ms % MINUTE_MS
        since = this_minute - (WINDOWS[window] - 1) * MINUTE_MS
        _sum_range(total, self.minutes.get(qc), since, this_minute, MINUTE_MS)
        return total

    def minutes_between(self, qc: QC, since: int, until: int, total: SegmentStats | None = None) -> SegmentStats:
        """The one-minute buckets starting in [since, until) merged into `total` (a new one if None): the
        staffing window's inputs, read at every scrape; looked up minute by minute (_sum_range)."""
        total = SegmentStats() if total is None else total
        _sum_range(total, self.minutes.get(qc), since, until - 1, MINUTE_MS)
        return total

    def waiting(self, qc: QC, now_ms: int) -> tuple[int, float | None]:
        """Queue depth and longest current wait in seconds (None when nobody waits)."""
        opened = self.open.get(qc)
        if not opened:
            return 0, None
        return len(opened), max(0, now_ms - min(opened.values())) / 1000

    def agents_by_state(self, queue: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for state in self.agents.get(queue, {}).values():
            counts[state] = counts.get(state, 0) + 1
        return counts

    # -- housekeeping ----------------------------------------------------------
    def expire(self, limit: int | None = None) -> int:
        """Drop what no window, no rollup and no correction can need any more. Returns facts dropped.

        With `limit`, one slice of the pass: at most `limit` items are visited (heap entries of facts
        below the floors, agent timelines, then the other books' items), and the count of what it
        visited is returned; a return equal to `limit` means the pass is not over (call again). The
        floors are set when a pass begins; the facts below them are popped from the end heaps a slice at
        a time, each checked when its turn comes (a slice of stage two may have changed it)."""
        budget = -1 if limit is None else limit
        if self._expiring is None:
            self._expiring = self._begin_expiry()
        todo, floor, default_floor = self._expiring
        done = dropped = 0
        facts = self.facts
        while todo and done != budget:
            queue = todo[-1]
            heap = self._end_heaps.get(queue)  # (looked up each time: apply() may rebuild the heaps between slices)
            if not heap or heap[0][0] >= floor.get(queue, default_floor):
                todo.pop()  # nothing more below this queue's floor
                continue
            end, fid = heapq.heappop(heap)
            self._end_entries -= 1
            done += 1
            f = facts.get(fid)
            if f is None or _end_ms(f) != end or end >= floor.get(f[1], default_floor):
                continue  # gone, or changed (its new entry is in the heap), or now on a queue whose floor it is not below
            del facts[fid]
            self.dirty_facts.add(fid)
            if f[0] == "seg" and f[4] is None:  # a stale segment (its instant is below the floor, so past)
                self._account(fid, f, -1)
                self._stale_ids.discard(fid)
            dropped += 1
        if todo:
            return done
        if not self._expiry_tidied:
            self._tidy()
            self._expiry_tidied = True
            work = self._timeline_work = [(q, a) for q, agents in self.timelines.items() for a in agents]
            work.reverse()
        work = self._timeline_work
        while work and (budget < 0 or done < budget):
            queue, agent = work.pop()
            n = self._expire_timeline(queue, agent, default_floor)
            dropped += n
            done += 1 + n
        if work:
            return budget  # this slice is used up: call again
        for sub in (self.experience, self.agent_book, self.resolution):
            if limit is None:
                sub.expire(self.stream_ms)
                continue
            left = budget - done
            if left <= 0:
                return budget  # this slice is used up: call again
            n = sub.expire(self.stream_ms, limit=left)
            done += n
            if n == left:
                return done  # that book's pass is not over: call again
        self._expiring, self._expiry_tidied = None, False
        if self._floors() != self._floors_before:
            self._floors_moved = True
        return dropped if limit is None else done

    def _begin_expiry(self) -> tuple[list[str], dict[str, int], int]:
        """The start of an expiry pass: old buckets dropped, floors moved; the queues whose end heaps the
        pass then pops (what is below the floors, over the following slices)."""
        self._floors_before = self._floors()
        self._go_stale()  # (advance has done it already at this watermark, unless the book was just rebuilt)
        cutoff = self.stream_ms - self.settings.retention_ms
        minute_cutoff = self.stream_ms - 61 * MINUTE_MS - self.settings.lateness_ms
        for buckets in self.minutes.values():
            for start in [s for s in buckets if s < minute_cutoff and s < cutoff]:
                del buckets[start]
        keep_interval: dict[str, int] = {}
        for qc, buckets in self.intervals.items():
            if qc[0] not in keep_interval:
                tz = self.settings.queue(qc[0]).time_zone
                keep_interval[qc[0]] = min(cutoff, local_midnight_ms(self.stream_ms, tz))
            for start in [s for s in buckets if s + self.settings.interval_ms <= keep_interval[qc[0]]]:
                del buckets[start]
                if self.published.pop((qc[0], qc[1], start), None) is not None:
                    self.dirty_published.add((qc[0], qc[1], start))
        for queue, keep in keep_interval.items():
            self._floor[queue] = keep - self.settings.interval_ms
        todo = list(self._end_heaps)
        todo.reverse()  # popped from the end: in the heaps' order
        return todo, dict(self._floor), cutoff - self.settings.interval_ms

    def _rebuild_end_heaps(self) -> None:
        """The end heaps again from the facts, without stale entries (amortized: runs when they are
        more than twice the facts)."""
        heaps: dict[str, list[tuple[int, str]]] = {}
        count = 0
        for fid, f in self.facts.items():
            end = _end_ms(f)
            if end is not None:
                heap = heaps.get(f[1])
                if heap is None:
                    heap = heaps[f[1]] = []
                heap.append((end, fid))
                count += 1
        for heap in heaps.values():
            heapq.heapify(heap)
        self._end_heaps, self._end_entries = heaps, count

    def _tidy(self) -> None:
        """Empty queues leave the book; presence histories keep only what the 60-minute window needs."""
        # A queue with nothing waiting and nothing in any window (not even today) leaves the book,
        # so it stops being exported instead of showing zeros forever (e.g. a mistyped queue id).
        for qc in [qc for qc in self.queues()
                   if not self.open.get(qc) and not self.minutes.get(qc) and not self.intervals.get(qc)]:
            for book in (self.open, self.minutes, self.intervals, self.wait_histograms):
                book.pop(qc, None)
        horizon = self.stream_ms - 61 * MINUTE_MS - self.settings.lateness_ms
        for agents in self.presence.values():
            for history in agents.values():
                while len(history) > 1 and history[1][0] <= horizon:
                    del history[0]

    def _expire_timeline(self, queue: str, agent: str, default_floor: int) -> int:
        """One agent's presence points below the queue's floor go, but the latest of them stays: it holds
        the state at the start of every interval that can still be published. Returns the points dropped."""
        timeline = self.timelines.get(queue, {}).get(agent)
        if not timeline:
            return 0  # gone since the pass began
        floor = self._floor.get(queue, default_floor)
        keep = bisect.bisect_right(timeline, (floor, "\uffff", "")) - 1  # the last point at or below the floor
        dropped = 0
        for ts, eid, _state in timeline[:max(keep, 0)]:
            fid = apt_id(agent, eid, queue)
            if self.facts.pop(fid, None) is not None:
                self.dirty_facts.add(fid)
                dropped += 1
        if keep > 0:
            del timeline[:keep]
        return dropped

    def take_dirty(self, limit: int | None = None) -> tuple[dict[str, list | None], dict[str, list | None]]:
        """Changed facts (all books) and published entries; the other kinds' keys end with |exp, |agt, |res, |ret.

        With `limit`, at most that many facts and entries in all (the rest stay dirty for the next call);
        the floor rows come with the call that takes the last of them. A worker calls it until it returns
        fewer than `limit` in all: after a day close the publishers owe thousands of digests."""
        facts = {fid: (list(self.facts[fid]) if fid in self.facts else None)
                 for fid in take_keys(self.dirty_facts, limit)}
        left = None if limit is None else limit - len(facts)
        for sub in (self.experience, self.agent_book, self.resolution):
            for fid in take_keys(sub.dirty_facts, left):
                facts[fid] = list(sub.facts[fid]) if fid in sub.facts else None
            left = None if limit is None else limit - len(facts)
        published = {"|".join(map(str, k)): self.published.get(k) for k in take_keys(self.dirty_published, left)}
        for publisher, suffix in ((self.experience.publisher, "|exp"), (self.agent_book.publisher, "|agt"),
                                  (self.resolution.resolution, "|res"), (self.resolution.retention, "|ret")):
            left = None if limit is None else limit - len(facts) - len(published)
            for k, v in publisher.take_dirty(left).items():
                published["|".join(map(str, k)) + suffix] = v
        if limit is None or len(facts) + len(published) < limit:  # nothing else is left: the floors
            published.update(self._floor_rows())
            published.update(self.agent_book.take_floor_row())
        return facts, published

    def _floors(self) -> tuple:
        """Each queue's expiry floor, and the floors the other books share."""
        return (tuple(self._floor.items()),
                (self.experience._floor, self.resolution._res_floor, self.resolution._ret_floor))

    def _floor_rows(self) -> dict[str, list]:
        """The expiry floors, persisted with the deletions they caused ("<queue>|floor" rows): a book
        rebuilt from the tables (restart or rebalance) would otherwise start with none, take in a
        re-sent fact its predecessor had expired, and publish the expired interval again, holding
        only that fact. One row per queue (published keys are routed by queue); each carries the
        book's shared floors too. (The agent book, routed by agent, writes its own: take_floor_row.)"""
        if not self._floors_moved:
            return {}
        self._floors_moved = False
        queues, shared = self._floors()
        return {f"{queue}|floor": [floor, *shared] for queue, floor in queues}

    def clear_dirty(self) -> None:
        """Nothing persists (replay): forget which keys changed."""
        self.dirty_facts.clear()
        self.dirty_published.clear()
        self._floors_moved = False
        self.agent_book.take_floor_row()
        for sub in (self.experience, self.agent_book, self.resolution):
            sub.dirty_facts.clear()
        for publisher in (self.experience.publisher, self.agent_book.publisher, self.resolution.resolution,
                          self.resolution.retention):
            publisher.dirty.clear()

    def restore_fact(self, fid: str, fact: list) -> None:
        f = fact_from_json(fact)
        self.apply(fid, f)
        sub = self._sub_book(fid, f)
        (sub.dirty_facts if sub is not None else self.dirty_facts).discard(fid)

    def restore_published(self, key: str, value: list) -> None:
        if key.endswith(FLOOR_SUFFIX):
            self.agent_book.restore_floor(key[:-len(FLOOR_SUFFIX)], value)
        elif key.endswith("|floor"):
            queue = key[:-6]
            self._floor[queue] = max(self._floor.get(queue, -1), value[0])
            self.experience._floor = max(self.experience._floor, value[1])
            self.resolution._res_floor = max(self.resolution._res_floor, value[2])
            self.resolution._ret_floor = max(self.resolution._ret_floor, value[3])
        elif key.endswith("|exp"):
            queue, channel, start = key[:-4].rsplit("|", 2)
            self.experience.restore_published((queue, channel, int(start)), value)
        elif key.endswith("|agt"):
            agent, start = key[:-4].rsplit("|", 1)
            self.agent_book.restore_published((agent, int(start)), value)
        elif key.endswith("|res"):
            queue, channel, start = key[:-4].rsplit("|", 2)
            self.resolution.resolution.published[(queue, channel, int(start))] = list(value)
        elif key.endswith("|ret"):
            queue, channel, start, h = key[:-4].rsplit("|", 3)
            self.resolution.retention.published[(queue, channel, int(start), int(h))] = list(value)
        else:
            queue, channel, start = key.rsplit("|", 2)
            self.published[(queue, channel, int(start))] = list(value)


def _sum_range(total: SegmentStats, buckets: dict[int, SegmentStats] | None, since: int, until: int, step: int) -> None:
    """Merge into `total` the buckets whose start is in [since, until]. Their starts are multiples of
    `step` (_buckets), so the window's slots are looked up one by one when they are fewer than the
    buckets kept: /metrics and the live snapshot no longer walk every bucket of the retention (days of
    them while a housekeeping pass is behind) for each window. The sums are of integers (and a
    maximum), so the order of the merges changes nothing."""
    if not buckets:
        return
    first = since + (-since) % step  # the first multiple of step at or after since
    if until < first:
        return
    if (until - first) // step + 1 < len(buckets):
        for start in range(first, until + 1, step):
            b = buckets.get(start)
            if b is not None:
                total.merge(b)
        return
    for start, b in buckets.items():
        if since <= start <= until:
            total.merge(b)


def _end_ms(f: Fact) -> int | None:
    """When an ended segment or leg ended, or when a segment not ended goes stale; None for facts that
    are still in progress and never go stale (expiry and the retention floor compare with it)."""
    if f[0] == "seg":
        return f[4] if f[4] is not None or len(f) < 7 else f[6]
    if f[0] == "leg":
        return f[3]
    return None
