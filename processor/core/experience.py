"""Experience figures per queue, channel and interval (`experience_interval`), in stage two.

Facts (from profile.py, routed by queue): frt / ttr durations attributed to the interval of the
first reply / first resolution, and survey answers and QA scores attributed to the interval of
their event. Buckets are additive with retraction (a late contact.created or contact.queued
re-attributes a fact), durations are kept as multisets of integer milliseconds and the QA sum as
an exact Fraction, so the figures do not depend on arrival order.
"""
from __future__ import annotations

import heapq
from fractions import Fraction

from .calendar import business_ms
from .events import format_ts
from .figures import (ces_agrees, csat_top_two_box, duration_percentiles, mean_score, nps_class, nps_points,
                      share)
from .publish import Publisher
from .settings import EngineSettings

EXPERIENCE_KINDS = frozenset({"frt", "ttr", "svy", "qa"})
SURVEYS = ("csat", "ces", "nps", "complaint")


def _multiset_add(m: dict[int, int], v: int, sign: int) -> None:
    n = m.get(v, 0) + sign
    if n:
        m[v] = n
    else:
        del m[v]


class ExperienceStats:
    """Additive counters of one queue, channel and interval."""

    __slots__ = ("frt", "frt_business", "ttr", "ttr_business", "surveys", "qa_count", "qa_sum", "facts")

    def __init__(self) -> None:
        self.frt: dict[int, int] = {}
        self.frt_business: dict[int, int] = {}
        self.ttr: dict[int, int] = {}
        self.ttr_business: dict[int, int] = {}
        # survey -> [answers, hits, detractors]: hits are top-two-box (csat, complaint), agrees
        # (ces) or promoters (nps); detractors only for nps
        self.surveys: dict[str, list[int]] = {k: [0, 0, 0] for k in SURVEYS}
        self.qa_count = 0
        self.qa_sum = Fraction(0)
        self.facts = 0

    def add_survey(self, survey: str, score: float, scale_max: float, sign: int) -> None:
        counts = self.surveys.get(survey)
        if counts is None:
            return
        counts[0] += sign
        if survey == "nps":
            c = nps_class(score, scale_max)
            if c > 0:
                counts[1] += sign
            elif c < 0:
                counts[2] += sign
        elif survey == "ces":
            counts[1] += sign * ces_agrees(score, scale_max)
        else:
            counts[1] += sign * csat_top_two_box(score, scale_max)

    def add_qa(self, score: float, sign: int) -> None:
        self.qa_count += sign
        self.qa_sum += sign * Fraction(score)

    def score_figures(self) -> dict:
        """CSAT, CES, NPS, complaint CSAT and QA, each with its count (per queue, and per agent)."""
        s = self.surveys
        return {
            "csat": share(s["csat"][1], s["csat"][0]),
            "ces": share(s["ces"][1], s["ces"][0]),
            "nps": nps_points(s["nps"][1], s["nps"][2], s["nps"][0]),
            "complaint_csat": share(s["complaint"][1], s["complaint"][0]),
            "qa_score": mean_score(self.qa_sum, self.qa_count),
        }

    def figures(self, with_business: bool) -> dict:
        out = {
            "frt_seconds": duration_percentiles(self.frt),
            "ttr_seconds": duration_percentiles(self.ttr),
            **self.score_figures(),
        }
        if with_business:
            out["frt_business_seconds"] = duration_percentiles(self.frt_business)
            out["ttr_business_seconds"] = duration_percentiles(self.ttr_business)
        return out


SCORE_FIGURES = ("csat", "ces", "nps", "complaint_csat", "qa_score")


def empty_score_figures() -> dict:
    """ExperienceStats().score_figures(), built directly (agent records without any score need it often)."""
    return {k: {"value": None, "count": 0} for k in SCORE_FIGURES}


class ExperienceBook:
    """Experience facts of one stage-two partition, their interval buckets and their publication."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.facts: dict[str, tuple] = {}
        self.buckets: dict[tuple[str, str, int], ExperienceStats] = {}
        self.publisher = Publisher(self._record)
        self.dirty_facts: set[str] = set()
        self._floor = -1  # facts ending before this were expired with their interval
        # What expiry visits, oldest first: the interval keys (of buckets and publications) by start,
        # the facts by time. Entries of facts changed or gone since are skipped when they come up.
        self._keys_by_start: list[tuple[int, tuple[str, str, int]]] = []
        self._facts_by_ts: list[tuple[int, str]] = []
        self._pass_open = False  # a housekeeping pass in slices (expire(limit=...)) under way: floor fixed

    def apply(self, fact_id: str, fact: tuple | None) -> None:
        old = self.facts.get(fact_id)
        if old is not None and old[3] < self._floor:
            # due in the pass under way, not dropped yet: what the pass would have done first
            del self.facts[fact_id]
            self.dirty_facts.add(fact_id)
            old = None
        if fact is not None and fact[3] < self._floor:
            # its interval was already expired (stage one dead-letters such events as too late): a
            # new fact is ignored, a fact moved there leaves its old interval, as in ResolutionBook
            fact = None
        if old == fact:
            return
        if old is not None:
            self._account(old, -1)
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._account(fact, +1)
            if old is None or old[3] != fact[3]:
                heapq.heappush(self._facts_by_ts, (fact[3], fact_id))
        self.dirty_facts.add(fact_id)

    def _account(self, f: tuple, sign: int) -> None:
        kind, queue, channel, ts = f[0], f[1], f[2], f[3]
        iv = self.settings.interval_ms
        start = ts - ts % iv
        key = (queue, channel, start)
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = ExperienceStats()
            heapq.heappush(self._keys_by_start, (start, key))
        b.facts += sign
        if kind in ("frt", "ttr"):
            created = f[4]
            calendar_ms = max(0, ts - created)
            _multiset_add(b.frt if kind == "frt" else b.ttr, calendar_ms, sign)
            q = self.settings.queue(queue)
            if q.calendar is not None:
                biz = business_ms(created, ts, q.calendar, q.time_zone)
                _multiset_add(b.frt_business if kind == "frt" else b.ttr_business, biz, sign)
        elif kind == "svy":
            b.add_survey(f[4], f[5], f[6], sign)
        else:  # qa
            b.add_qa(f[4], sign)
        if b.facts == 0 and key not in self.publisher.published:
            del self.buckets[key]
        self.publisher.touch(key, start + iv)

    def _record(self, key: tuple[str, str, int], version: int) -> dict | None:
        queue, channel, start = key
        b = self.buckets.get(key)
        if b is None:
            if version == 1:
                return None
            b = ExperienceStats()
        q = self.settings.queue(queue)
        rec = {
            "kind": "experience_interval",
            "version": version,
            "interval_start": format_ts(start),
            "interval_end": format_ts(start + self.settings.interval_ms),
            "queue_id": queue,
            "channel": channel,
        }
        rec.update(b.figures(q.calendar is not None))
        rec["time_zone"] = q.time_zone
        return rec

    def advance(self, stream_ms: int, limit: int | None = None) -> list[dict]:
        return self.publisher.advance(stream_ms - self.settings.lateness_ms, limit)

    def flush(self) -> list[dict]:
        return self.publisher.flush()

    def restore_published(self, key: tuple[str, str, int], value: list) -> None:
        """A publication entry of a rebuilt book (listed for expiry like the keys of its buckets)."""
        self.publisher.published[key] = list(value)
        heapq.heappush(self._keys_by_start, (key[2], key))

    def expire(self, stream_ms: int, limit: int | None = None) -> int:
        """Intervals older than the retention go, with their facts and publication entries. Visits the
        keys and facts due (by their time indexes), at most `limit` of them; returns how many it
        visited (equal to `limit`: the pass is not over, call again; its floor stays fixed)."""
        if not self._pass_open:
            iv = self.settings.interval_ms
            cutoff = stream_ms - self.settings.retention_ms
            floor = cutoff - cutoff % iv
            if floor <= self._floor:
                return 0
            self._floor = floor
            self._pass_open = True
        floor = self._floor
        budget = limit if limit is not None else -1
        done = 0
        keys = self._keys_by_start
        while keys and keys[0][0] < floor:
            if done == budget:
                return done
            _, key = heapq.heappop(keys)
            done += 1
            self.buckets.pop(key, None)
            self.publisher.forget(key)
        facts, by_ts = self.facts, self._facts_by_ts
        while by_ts and by_ts[0][0] < floor:
            if done == budget:
                return done
            ts, fid = heapq.heappop(by_ts)
            done += 1
            f = facts.get(fid)
            if f is not None and f[3] == ts:
                del facts[fid]
                self.dirty_facts.add(fid)
        self._pass_open = False
        return done
