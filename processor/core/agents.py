"""Agent figures per agent and interval (`agent_interval`), in stage two.

Facts (routed by agent id, so one stage-two partition owns each agent):
  ("ast", agent, ts_ms, state)          one agent.state_changed: a point of the agent's timeline
  ("aleg", agent, end_ms, handle_ms)    one agent leg the agent handled (talk + hold + ACW), by its end
  ("asvy", agent, ts_ms, survey, score, scale_max)   a survey answer rating the agent (see profile.py)
  ("aqa", agent, ts_ms, score)          a QA score of the agent
Surveys and QA scores count in the interval of their own event time, with the same formulas as
per queue (experience.ExperienceStats).

Time by state in an interval is read off the timeline: each state lasts from its change to the
next change (ties ordered by event id). Before the first known change the agent's state is
unknown and counts nowhere. An interval gets a record when the agent spent time in a state other
than offline, changed state, or ended a leg in it: an agent offline all along produces none.
The timeline is trimmed at expiry to one "carry" point holding the state at the retention floor.
"""
from __future__ import annotations

import bisect

from .events import AGENT_STATES, format_ts
from .experience import ExperienceStats, empty_score_figures
from .figures import agent_figures
from .publish import Publisher
from .settings import EngineSettings

AGENT_KINDS = frozenset({"ast", "aleg", "asvy", "aqa"})
SCORE_KINDS = ("asvy", "aqa")


def _ts(entry: tuple) -> int:
    return entry[0]


def ms_by_state(timeline: list[tuple[int, str, str]], start: int, end: int) -> dict[str, int]:
    """Milliseconds of [start, end) spent in each state, from a sorted (ts, tie, state) timeline."""
    out: dict[str, int] = {}
    i = bisect.bisect_right(timeline, start, key=_ts)
    state = timeline[i - 1][2] if i else None
    cursor = start
    for ts, _tie, new_state in timeline[i:]:
        if ts >= end:
            break
        if state is not None and ts > cursor:
            out[state] = out.get(state, 0) + ts - cursor
        state, cursor = new_state, ts
    if state is not None and end > cursor:
        out[state] = out.get(state, 0) + end - cursor
    return out


class AgentBook:
    """Agent facts of one stage-two partition and their `agent_interval` publication."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, tuple] = {}
        self.timelines: dict[str, list[tuple[int, str, str]]] = {}   # agent -> [(ts, fact id, state)]
        self.legs: dict[tuple[str, int], list[int]] = {}             # (agent, interval) -> [handled, handle ms]
        self.scores: dict[tuple[str, int], ExperienceStats] = {}     # (agent, interval) -> surveys and QA
        self.publisher = Publisher(self._record)
        self.dirty_facts: set[str] = set()
        self._closed: int | None = None   # latest interval start enqueued for every agent
        self._interval_ms = settings.interval_ms  # settings are frozen: read once
        self._floor = -1

    def _start(self, ts: int) -> int:
        return ts - ts % self.settings.interval_ms

    # -- facts -------------------------------------------------------------------------------
    def apply(self, fact_id: str, fact: tuple | None) -> None:
        old = self.facts.get(fact_id)
        if old == fact:
            return
        if old is None and fact is not None and fact[2] < self._floor:
            return  # expired already (stage one dead-letters such events as too late)
        if fact is not None and fact[0] == "ast" and fact_id.endswith("|") and fact[2] > self._floor:
            # A carry (see expire) is made at the floor: a book rebuilt from the table learns the floor
            # from it, so a repeat of a change older than the floor (stage one re-asserts what it sent
            # before a crash) is ignored here too instead of landing before the carry.
            self._floor = fact[2]
        if old is not None:
            self._account(fact_id, old, -1)
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._account(fact_id, fact, +1)
        self.dirty_facts.add(fact_id)

    def _account(self, fid: str, f: tuple, sign: int) -> None:
        iv = self._interval_ms
        if f[0] in SCORE_KINDS:
            key = (f[1], self._start(f[2]))
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
            self.publisher.touch(key, key[1] + iv)
            return
        if f[0] == "aleg":
            _, agent, end, handle = f
            key = (agent, self._start(end))
            legs = self.legs.get(key)
            if legs is None:
                legs = self.legs[key] = [0, 0]
            legs[0] += sign
            legs[1] += sign * handle
            if legs[0] == 0:
                del self.legs[key]
            self.publisher.touch(key, key[1] + iv)
            return
        _, agent, ts, state = f
        tl = self.timelines.get(agent)
        if tl is None:
            tl = self.timelines[agent] = []
        entry = (ts, fid, state)
        if sign > 0:
            if not tl or tl[-1] < entry:  # in order: the common case
                tl.append(entry)
                i = len(tl) - 1
            else:
                bisect.insort(tl, entry)
                i = bisect.bisect_left(tl, entry)
        else:
            i = bisect.bisect_left(tl, entry)
        # the change affects the intervals from its own up to the next change (or what is closed)
        upto = tl[i + 1][0] if i + 1 < len(tl) else None
        if sign < 0:
            del tl[i]
            if not tl:
                del self.timelines[agent]
        first = ts - ts % iv
        closed = self._closed
        if closed is None:
            self.publisher.touch((agent, first), first + iv)
            return
        last = max(first, min(upto - upto % iv if upto is not None else closed, closed))
        touch = self.publisher.touch
        for s in range(first, last + iv, iv):
            touch((agent, s), s + iv)

    # -- records -----------------------------------------------------------------------------
    def _record(self, key: tuple[str, int], version: int) -> dict | None:
        agent, start = key
        end = start + self.settings.interval_ms
        tl = self.timelines.get(agent, [])
        by_state = ms_by_state(tl, start, end)
        j = bisect.bisect_left(tl, start, key=_ts)
        changed = j < len(tl) and tl[j][0] < end
        handled, handle_ms = self.legs.get(key, (0, 0))
        scores = self.scores.get(key)
        if version == 1 and not handled and not changed and scores is None \
                and not any(v for s, v in by_state.items() if s != "offline"):
            return None
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

    def _enqueue_until(self, closed: int) -> None:
        """Every agent's intervals up to `closed` (a start) are candidates for a record."""
        iv = self.settings.interval_ms
        for agent, tl in self.timelines.items():
            lo = self._start(tl[0][0]) if self._closed is None else self._closed + iv
            lo = max(lo, self._start(tl[0][0]))
            if tl[-1][2] == "offline" and tl[-1][0] < lo:
                continue  # offline since before these intervals: nothing to report
            for s in range(lo, closed + iv, iv):
                self.publisher.touch((agent, s), s + iv)
        self._closed = closed

    def advance(self, stream_ms: int) -> list[dict]:
        if stream_ms <= 0:
            return []
        watermark = stream_ms - self.settings.lateness_ms
        closed = self._start(watermark) - self.settings.interval_ms  # latest start whose end <= watermark
        if self._closed is None or closed > self._closed:
            self._enqueue_until(closed)
        return self.publisher.advance(watermark)

    def flush(self, stream_ms: int) -> list[dict]:
        """End of input: intervals up to the one holding stream time count as closed."""
        if stream_ms > 0:
            current = self._start(stream_ms)
            if self._closed is None or current > self._closed:
                self._enqueue_until(current)
        return self.publisher.flush()

    # -- housekeeping --------------------------------------------------------------------------
    def expire(self, stream_ms: int) -> int:
        """Drop what is older than the retention; each timeline keeps its state at the floor."""
        cutoff = stream_ms - self.settings.retention_ms
        floor = self._start(cutoff)
        if floor <= self._floor:
            return 0
        self._floor = floor
        dropped = 0
        for agent in list(self.timelines):
            tl = self.timelines[agent]
            i = bisect.bisect_left(tl, floor, key=_ts)
            if i == 0:
                continue
            carry_state = tl[i - 1][2]
            for _ts_, fid, _s in tl[:i]:
                del self.facts[fid]
                self.dirty_facts.add(fid)
                dropped += 1
            del tl[:i]
            if carry_state == "offline" and not tl:
                del self.timelines[agent]
                continue
            carry = f"as|{agent}|"   # an empty event id: sorts before any real change at the floor
            self.facts[carry] = ("ast", agent, floor, carry_state)
            self.dirty_facts.add(carry)
            tl.insert(0, (floor, carry, carry_state))
        gone = [fid for fid, f in self.facts.items() if f[0] != "ast" and f[2] < floor]
        for fid in gone:
            del self.facts[fid]
            self.dirty_facts.add(fid)
        dropped += len(gone)
        for key in [k for k in self.legs if k[1] < floor]:
            del self.legs[key]
        for key in [k for k in self.scores if k[1] < floor]:
            del self.scores[key]
        for key in [k for k in list(self.publisher.published) + list(self.publisher.pending) if k[1] < floor]:
            self.publisher.forget(key)
        return dropped
