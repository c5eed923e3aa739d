"""The one definition of every queue figure (contract §2). Rollups, gauges and the wallboard all call these.

A ratio whose denominator is zero is None (JSON null), never 0.
"""
from __future__ import annotations

from .stats import SegmentStats


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


def seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def service_level(s: SegmentStats) -> dict[str, float | None]:
    """The three service-level formulas, published side by side."""
    return {
        "answered_over_offered": ratio(s.answered_within, s.offered - s.short_abandoned),
        "answered_over_answered": ratio(s.answered_within, s.answered),
        "abandons_positive": ratio(s.answered_within + s.abandoned_within, s.answered + s.abandoned),
    }


def asa_seconds(s: SegmentStats) -> float | None:
    """Average speed of answer: mean wait of answered segments."""
    return s.answered_wait_ms / s.answered / 1000 if s.answered > 0 else None


def abandon_rate(s: SegmentStats) -> float | None:
    """(abandoned − short abandoned) / (offered − short abandoned)."""
    return ratio(s.abandoned - s.short_abandoned, s.offered - s.short_abandoned)


def aht_seconds(s: SegmentStats) -> float | None:
    """Average handle time: (talk + hold + ACW) / legs ended."""
    total = s.talk_ms + s.hold_ms + s.acw_ms
    return total / s.handled / 1000 if s.handled > 0 else None


def segment_figures(s: SegmentStats) -> dict:
    """Every interval figure of a bucket, in the field names of the `queue_interval` rollup."""
    return {
        "offered": s.offered,
        "answered": s.answered,
        "abandoned": s.abandoned,
        "short_abandoned": s.short_abandoned,
        "flowed_out": s.flowed_out,
        "answered_within_threshold": s.answered_within,
        "abandoned_within_threshold": s.abandoned_within,
        "service_level": service_level(s),
        "asa_seconds": asa_seconds(s),
        "abandon_rate": abandon_rate(s),
        "max_wait_seconds": seconds(s.max_wait_ms),
        "handled": s.handled,
        "aht_seconds": aht_seconds(s),
        "talk_seconds": s.talk_ms / 1000,
        "hold_seconds": s.hold_ms / 1000,
        "acw_seconds": s.acw_ms / 1000,
    }
