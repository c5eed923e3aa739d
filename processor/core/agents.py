"""Agent figures per agent and interval (`agent_interval`), in stage two (choices: docs/agents.md).

Facts (routed by agent id, so one stage-two partition owns each agent):
  ("ast", agent, ts_ms, state)          one agent.state_changed: a point of the agent's timeline
  ("aleg", agent, end_ms, handle_ms)    one agent leg the agent handled (talk + hold + ACW), by its end
  ("asvy", agent, ts_ms, survey, score, scale_max)   a survey answer rating the agent (see profile.py)
  ("aqa", agent, ts_ms, score)          a QA score of the agent
Surveys and QA scores count in the interval of their own event time, with the same formulas as
per queue (experience.ExperienceStats).

Time by state in an interval is read off the timeline: each state lasts from its change to the
next change (ties ordered by event id), offline included. Before the first known change the
agent's state is unknown and counts nowhere. An interval gets a record when the agent spent time
in a state other than offline, changed state, ended a leg or got a survey or QA score in it. A
record that no longer qualifies after it was published is replaced by a version with every
figure zero, as the other kinds do.

Expiry never changes a figure: below the retention floor it drops every change but the last one
(the agent's state at the floor, whatever it is, kept for as long as the agent is known), so an
agent with nothing newer is one entry (`bases`). Every step costs O(log n) in the agent's held
changes plus its own work; expiry visits only keys below the floor, through an index by interval.
"""
from __future__ import annotations

import bisect
import heapq

from .events import AGENT_STATES, format_ts
from .experience import ExperienceStats, empty_score_figures
from .figures import agent_figures
from .publish import Publisher
from .settings import EngineSettings

AGENT_KINDS = frozenset({"ast", "aleg", "asvy", "aqa"})
SCORE_KINDS = ("asvy", "aqa")
FLOOR_SUFFIX = "|agtfloor"  # the published-table row that persists the book's expiry floor

Entry = tuple[int, str, str]  # (ts, fact id, state): one state change


def _ts(entry: tuple) -> int:
    return entry[0]


def ms_by_state(timeline: list[tuple[int, str, str]], start: int, end: int) -> dict[str, int]:
    """Milliseconds of [start, end) spent in each state, from a sorted (ts, tie, state) timeline."""
    i = bisect.bisect_right(timeline, start, key=_ts)
    return _walk(timeline[i - 1][2] if i else None, timeline[i:], start, end)


def _walk(state: str | None, changes, start: int, end: int) -> dict[str, int]:
    """Milliseconds of [start, end) by state: `state` at start, then the sorted changes (ts >= start)."""
    out: dict[str, int] = {}
    cursor = start
    for ts, _tie, new_state in changes:
        if ts >= end:
            break
        if state is not None and ts > cursor:
            out[state] = out.get(state, 0) + ts - cursor
        state, cursor = new_state, ts
    if state is not None and end > cursor:
        out[state] = out.get(state, 0) + end - cursor
    return out


class Timeline:
    """The state changes of one agent not yet folded into its base: a sorted list per interval start,
    so an insertion or a removal moves only the entries of its own interval."""

    __slots__ = ("starts", "cells")

    def __init__(self) -> None:
        self.starts: list[int] = []                 # interval starts that hold changes, ascending
        self.cells: dict[int, list[Entry]] = {}     # interval start -> its changes, sorted

    def last(self) -> Entry:
        return self.cells[self.starts[-1]][-1]

    def before(self, start: int) -> Entry | None:
        """The latest change in an interval before `start`."""
        i = bisect.bisect_left(self.starts, start)
        return self.cells[self.starts[i - 1]][-1] if i else None

    def after(self, entry: Entry, start: int) -> Entry | None:
        """The change following `entry` (held, in the interval at `start`)."""
        cell = self.cells[start]
        j = bisect.bisect_right(cell, entry)
        if j < len(cell):
            return cell[j]
        k = bisect.bisect_right(self.starts, start)
        return self.cells[self.starts[k]][0] if k < len(self.starts) else None


class AgentBook:
    """Agent facts of one stage-two partition and their `agent_interval` publication."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, tuple] = {}
        self.timelines: dict[str, Timeline] = {}   # agent -> changes not folded into its base
        self.bases: dict[str, Entry] = {}          # agent -> its last change below the floor (its state there)
        self.legs: dict[tuple[str, int], list[int]] = {}             # (agent, interval) -> [handled, handle ms]
        self.scores: dict[tuple[str, int], ExperienceStats] = {}     # (agent, interval) -> surveys and QA
        self._fids: dict[tuple[str, int], set[str]] = {}             # (agent, interval) -> its leg and score facts
        self.publisher = Publisher(self._record)
        self.dirty_facts: set[str] = set()
        self._closed: int | None = None   # latest interval start enqueued for every agent
        self._interval_ms = settings.interval_ms  # settings are frozen: read once
        self._floor = -1
        # Agents a closing interval must visit (see _enqueue_until): those whose latest change is not
        # offline, and those whose latest change is offline in an interval not closed yet (-> its start).
        self._staffed: set[str] = set()
        self._leaving: dict[str, int] = {}
        # Expiry index: interval start -> agents holding anything there (changes, legs, scores, a record),
        # and a heap of those starts; the start being expired and its agents left (a pass can be sliced).
        self._at: dict[int, set[str]] = {}
        self._starts: list[int] = []
        self._expiring: list[str] = []
        self._expiring_start = 0
        self._marker: str | None = None   # an agent of this book: names the floor's row (take_floor_row)
        self._floor_moved = False

    def _start(self, ts: int) -> int:
        return ts - ts % self._interval_ms

    # -- facts -------------------------------------------------------------------------------
    def apply(self, fact_id: str, fact: tuple | None) -> None:
        old = self.facts.get(fact_id)
        if old == fact:
            return
        if old is None and fact is not None and fact[2] < self._floor:
            return  # expired already (stage one dead-letters such events as too late)
        if fact is not None:
            if self._marker is None:
                self._marker = fact[1]
            if fact[0] == "ast" and fact_id.endswith("|") and fact[2] > self._floor:
                # A carry, as books before docs/agents.md made them at their floor: a book rebuilt from
                # such a table learns its floor from it.
                self._floor = fact[2]
        if old is not None:
            self._account(fact_id, old, -1)
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._account(fact_id, fact, +1)
        self.dirty_facts.add(fact_id)

    def _index(self, agent: str, start: int) -> None:
        agents = self._at.get(start)
        if agents is None:
            agents = self._at[start] = set()
            heapq.heappush(self._starts, start)
        agents.add(agent)

    def _touch(self, agent: str, start: int) -> None:
        if start < self._floor:
            return  # an expired interval is never published again
        self.publisher.touch((agent, start), start + self._interval_ms)
        self._index(agent, start)

    def _account(self, fid: str, f: tuple, sign: int) -> None:
        iv = self._interval_ms
        if f[0] != "ast":
            key = (f[1], f[2] - f[2] % iv)
            if f[0] == "aleg":
                legs = self.legs.get(key)
                if legs is None:
                    legs = self.legs[key] = [0, 0]
                legs[0] += sign
                legs[1] += sign * f[3]
                if legs[0] == 0:
                    del self.legs[key]
            else:
                b = self.scores.get(key)
                if b is None:
                    b = self.scores[key] = ExperienceStats()
                if f[0] == "asvy":
                    b.add_survey(f[3], f[4], f[5], sign)
                else:
                    b.add_qa(f[3], sign)
                b.facts += sign
                if b.facts == 0:
                    del self.scores[key]
            fids = self._fids.get(key)
            if sign > 0:
                if fids is None:
                    fids = self._fids[key] = set()
                fids.add(fid)
            elif fids is not None:
                fids.discard(fid)
                if not fids:
                    del self._fids[key]
            self._index(key[0], key[1])
            self._touch(key[0], key[1])
            return
        _, agent, ts, state = f
        first = ts - ts % iv
        entry = (ts, fid, state)
        tl = self.timelines.get(agent)
        if sign > 0:
            if tl is None:
                tl = self.timelines[agent] = Timeline()
            cell = tl.cells.get(first)
            if cell is None:
                cell = tl.cells[first] = []
                if not tl.starts or tl.starts[-1] < first:
                    tl.starts.append(first)
                else:
                    bisect.insort(tl.starts, first)
            if not cell or cell[-1] < entry:  # in order: the common case
                cell.append(entry)
            else:
                bisect.insort(cell, entry)
            self._index(agent, first)
            nxt = tl.after(entry, first)
        elif tl is not None and first in tl.cells:
            nxt = tl.after(entry, first)
            cell = tl.cells[first]
            del cell[bisect.bisect_left(cell, entry)]
            if not cell:
                del tl.cells[first]
                tl.starts.remove(first)  # a handful of starts (the retention's intervals)
                if not tl.starts:
                    del self.timelines[agent]
        else:  # the base itself (stage one never retracts a change; kept for completeness)
            nxt = None
            del self.bases[agent]
        self._follow(agent)
        # the change affects the intervals from its own up to the next change (or what is closed)
        closed = self._closed
        if closed is None:
            self._touch(agent, first)
            return
        upto = nxt[0] if nxt is not None else None
        last = max(first, min(upto - upto % iv if upto is not None else closed, closed))
        for s in range(first, last + iv, iv):
            self._touch(agent, s)

    def _last(self, agent: str) -> Entry | None:
        tl = self.timelines.get(agent)
        return tl.last() if tl is not None else self.bases.get(agent)

    def _follow(self, agent: str) -> None:
        """Keep _staffed and _leaving in step with the agent's latest change."""
        last = self._last(agent)
        if last is not None and last[2] != "offline":
            self._staffed.add(agent)
            self._leaving.pop(agent, None)
            return
        self._staffed.discard(agent)
        if last is not None and (self._closed is None or self._start(last[0]) > self._closed):
            self._leaving[agent] = self._start(last[0])
        else:
            self._leaving.pop(agent, None)

    # -- records -----------------------------------------------------------------------------
    def _record(self, key: tuple[str, int], version: int) -> dict | None:
        agent, start = key
        if start < self._floor:
            return None  # expired (a book rebuilt from its tables may still hold it until its next expiry)
        end = start + self._interval_ms
        tl = self.timelines.get(agent)
        cell = None
        before = None
        if tl is not None:
            cell = tl.cells.get(start)
            before = tl.before(start)
        if before is None:
            before = self.bases.get(agent)
        by_state = _walk(before[2] if before is not None else None, cell or (), start, end)
        handled, handle_ms = self.legs.get(key, (0, 0))
        scores = self.scores.get(key)
        if not handled and not cell and scores is None \
                and not any(v for s, v in by_state.items() if s != "offline"):
            if version == 1:
                return None
            by_state = {}  # nothing left to report: a version with every figure zero retracts the record
        seconds = {s: by_state.get(s, 0) / 1000 for s in AGENT_STATES}
        for s, v in sorted(by_state.items()):
            seconds.setdefault(s, v / 1000)
        rec = {
            "kind": "agent_interval",
            "version": version,
            "interval_start": format_ts(start),
            "interval_end": format_ts(end),
            "agent_id": agent,
            "seconds_by_state": seconds,
        }
        rec.update(agent_figures(by_state, handled, handle_ms))
        rec.update(scores.score_figures() if scores is not None else empty_score_figures())
        return rec

    def _first_start(self, agent: str) -> int:
        base = self.bases.get(agent)
        return self._start(base[0]) if base is not None else self.timelines[agent].starts[0]

    def _enqueue_until(self, closed: int) -> None:
        """The intervals up to `closed` (a start) of every agent that may have a record there without a
        fact of its own: staffed (latest change not offline), or offline only from a later interval.
        Intervals with a fact of their own were touched by the fact."""
        iv, floor, touch = self._interval_ms, self._floor, self._touch
        if self._closed is None:  # first time (a new or rebuilt book): every agent held, once
            for agent in sorted(self.timelines.keys() | self.bases.keys()):
                lo = max(self._first_start(agent), floor)
                last = self._last(agent)
                assert last is not None
                hi = closed
                if last[2] == "offline":  # offline from its interval on: nothing to report after it
                    if last[0] < lo:
                        continue
                    hi = min(closed, self._start(last[0]))
                for s in range(lo, hi + iv, iv):
                    touch(agent, s)
        else:
            lo = self._closed + iv
            for agent in self._staffed:
                for s in range(max(lo, self._first_start(agent)), closed + iv, iv):
                    touch(agent, s)
            for agent, last_start in self._leaving.items():
                for s in range(max(lo, self._first_start(agent)), min(closed, last_start) + iv, iv):
                    touch(agent, s)
        self._closed = closed
        self._leaving = {a: s for a, s in self._leaving.items() if s > closed}

    def advance(self, stream_ms: int, limit: int | None = None) -> list[dict]:
        """Records due at this stream time (with `limit`: see Publisher.advance)."""
        if stream_ms <= 0:
            return []
        watermark = stream_ms - self.settings.lateness_ms
        closed = self._start(watermark) - self._interval_ms  # latest start whose end <= watermark
        if self._closed is None or closed > self._closed:
            self._enqueue_until(closed)
        return self.publisher.advance(watermark, limit)

    def flush(self, stream_ms: int) -> list[dict]:
        """End of input: intervals up to the one holding stream time count as closed (docs/agents.md)."""
        if stream_ms > 0:
            current = self._start(stream_ms)
            if self._closed is None or current > self._closed:
                self._enqueue_until(current)
        return self.publisher.flush()

    # -- housekeeping --------------------------------------------------------------------------
    def expire(self, stream_ms: int, limit: int | None = None) -> int:
        """Forget what is below the retention floor, except each agent's state there (its last change
        below it). Visits only the (agent, interval) keys below the floor, oldest interval first, at
        most `limit` of them; returns how many it visited (equal to `limit`: call again)."""
        cutoff = stream_ms - self.settings.retention_ms
        floor = self._start(cutoff)
        if floor > self._floor:
            self._floor = floor
            self._floor_moved = True
        done = 0
        while limit is None or done < limit:
            if not self._expiring:
                if not self._starts or self._starts[0] >= self._floor:
                    break
                start = heapq.heappop(self._starts)
                self._expiring = sorted(self._at.pop(start), reverse=True)
                self._expiring_start = start
            self._expire_key(self._expiring.pop(), self._expiring_start)
            done += 1
        return done

    def _expire_key(self, agent: str, start: int) -> None:
        key = (agent, start)
        dirty = self.dirty_facts
        fids = self._fids.pop(key, None)
        if fids is not None:
            for fid in fids:
                del self.facts[fid]
                dirty.add(fid)
        self.legs.pop(key, None)
        self.scores.pop(key, None)
        self.publisher.forget(key)
        tl = self.timelines.get(agent)
        if tl is None or start not in tl.cells:
            return
        # Intervals are expired oldest first: nothing of the agent's timeline is older than `start`.
        i = bisect.bisect_left(tl.starts, start)
        cell = tl.cells.pop(start)
        del tl.starts[i]
        if i < len(tl.starts) and tl.starts[i] < self._floor:
            keep = None  # a later interval below the floor holds a later change: that one is the state at the floor
        else:
            keep = cell.pop()  # the agent's state at the floor, offline included
        for _ts, fid, _state in cell:
            del self.facts[fid]
            dirty.add(fid)
        if keep is not None:
            old = self.bases.get(agent)
            if old is not None:
                del self.facts[old[1]]
                dirty.add(old[1])
            self.bases[agent] = keep
        if not tl.starts:
            del self.timelines[agent]

    # -- persistence -----------------------------------------------------------------------
    def take_floor_row(self) -> dict[str, list]:
        """The expiry floor as one published-table row when it moved: a book rebuilt from the tables
        refuses a re-sent fact its predecessor had expired. Named after an agent of this book, so the
        key belongs to its partition."""
        if not self._floor_moved or self._marker is None:
            return {}
        self._floor_moved = False
        return {self._marker + FLOOR_SUFFIX: [self._floor]}

    def restore_floor(self, agent: str, value: list) -> None:
        self._marker = agent
        if value[0] > self._floor:
            self._floor = value[0]

    def restore_published(self, key: tuple[str, int], value: list) -> None:
        self.publisher.published[key] = list(value)
        self._index(key[0], key[1])
