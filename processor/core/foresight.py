"""What is about to happen to a queue: contacts about to breach T, and the service level the floor can still reach.

Decided at an instant given by the caller (the shell passes the book's stream clock, event time),
so replay and streaming give the same figures on the same input.

  wait w = now - start of a segment still waiting (T = threshold, R = at_risk_seconds)
  at risk:  T - R < w <= T   (answered now it counts within T; R seconds from now it would not)
  breached: w > T            (whatever happens now, it is outside T)
Projected service level, for the current interval and for today, all three formulas: the ended
segments plus every contact waiting now counted as answered,
  worst: each answered only after its wait passes T (none within T);
  best:  each answered now (within T unless already breached).
"""
from __future__ import annotations

from .figures import service_level
from .queues import QC, QueueBook
from .stats import SegmentStats

BOUNDS = ("worst", "best")
PROJECTED_WINDOWS = ("interval", "today")


def at_risk_counts(starts, now_ms: int, threshold_ms: int, at_risk_ms: int) -> tuple[int, int]:
    """(at risk, breached) among segments waiting since `starts` (ms), at `now_ms`."""
    at_risk = breached = 0
    for start in starts:
        wait = now_ms - start
        if wait > threshold_ms:
            breached += 1
        elif wait > threshold_ms - at_risk_ms:
            at_risk += 1
    return at_risk, breached


def projected_service_level(s: SegmentStats, waiting: int, breached: int) -> dict[str, dict[str, float | None]]:
    """{worst, best} -> the three service-level formulas with the `waiting` contacts answered late / now."""
    out = {}
    for bound in BOUNDS:
        p = SegmentStats()
        p.merge(s)
        p.answered += waiting
        if bound == "best":
            p.answered_within += waiting - breached
        out[bound] = service_level(p)
    return out


def foresight_view(book: QueueBook, now_ms: int) -> list[dict]:
    """One dict per (queue, channel): waiting, at risk, breached, projected service level per window and bound."""
    out = []
    iv = book.settings.interval_ms
    for qc in book.queues():
        q = book.settings.queue(qc[0])
        starts = book.open.get(qc, {}).values()
        at_risk, breached = at_risk_counts(starts, now_ms, q.threshold_ms, q.at_risk_ms)
        waiting = len(starts)
        projected = {}
        for window in PROJECTED_WINDOWS:
            s = _interval_stats(book, qc, now_ms - now_ms % iv) if window == "interval" else \
                book.window_stats(qc, "today", now_ms)
            projected[window] = projected_service_level(s, waiting, breached)
        out.append({"queue_id": qc[0], "channel": qc[1], "waiting": waiting, "at_risk": at_risk,
                    "breached_waiting": breached, "at_risk_seconds": q.at_risk_seconds,
                    "projected_service_level": projected})
    return out


def _interval_stats(book: QueueBook, qc: QC, start: int) -> SegmentStats:
    return book.intervals.get(qc, {}).get(start) or SegmentStats()
