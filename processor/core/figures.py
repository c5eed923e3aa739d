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


# ------------------------------------------------------------------ experience (contract §2, FRT ... QA)

PERCENTILES = (50, 75, 90)


def nearest_rank(sorted_values: list, p: int):
    """The p-th percentile by the nearest-rank method: the smallest value with at least p % of the
    values at or below it, i.e. sorted_values[ceil(p / 100 * n) - 1]. Always an observed value,
    independent of the order the values arrived in; None for an empty list.

    n = 4, values 10 20 30 40: p50 -> rank ceil(2.0) = 2 -> 20; p75 -> rank 3 -> 30; p90 -> rank ceil(3.6) = 4 -> 40.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    rank = -(-p * n // 100)  # ceil(p * n / 100) in integers
    return sorted_values[max(rank, 1) - 1]


def duration_percentiles(counts: dict[int, int]) -> dict:
    """{p50, p75, p90, count} in seconds from a multiset of durations in ms (value -> multiplicity)."""
    values: list[int] = []
    for v in sorted(counts):
        values.extend([v] * counts[v])
    out = {f"p{p}": seconds(nearest_rank(values, p)) for p in PERCENTILES}
    out["count"] = len(values)
    return out


def csat_top_two_box(score: float, scale_max: float) -> bool:
    """CSAT (and complaint-handling satisfaction): an answer in the top two boxes, score >= scale_max - 1."""
    return score >= scale_max - 1


def ces_agrees(score: float, scale_max: float) -> bool:
    """CES: an answer >= 5 on a 7-point scale, scaled for other scales: score / scale_max >= 5 / 7.

    So 5, 6, 7 of 7; 4, 5 of 5 (3.57 rounded up); 8, 9, 10 of 10 (7.14 rounded up).
    """
    return 7 * score >= 5 * scale_max


def nps_class(score: float, scale_max: float) -> int:
    """+1 promoter (9-10 on 0-10), -1 detractor (0-6), 0 passive; other scales scaled to 0-10 first."""
    if 10 * score >= 9 * scale_max:
        return 1
    if 10 * score <= 6 * scale_max:
        return -1
    return 0


def share(hits: int, count: int) -> dict:
    """A share figure with its count: {value: hits / count or None, count}."""
    return {"value": ratio(hits, count), "count": count}


def nps_points(promoters: int, detractors: int, count: int) -> dict:
    """NPS in points, -100..100: 100 * (promoters - detractors) / answers."""
    return {"value": 100 * (promoters - detractors) / count if count > 0 else None, "count": count}


def mean_score(total, count: int) -> dict:
    """QA: mean score with its count (total may be a Fraction, for an exact order-independent sum)."""
    return {"value": float(total / count) if count > 0 else None, "count": count}


# ------------------------------------------------------------------ resolution (FCR, repeat, reopen)

def resolution_figures(contacts: int, repeats: int, first: int, fcr: int, resolved: int, reopened: int) -> dict:
    """The `resolution_day` figures from the counts of one queue, channel and day."""
    return {
        "first_contacts": first,
        "first_contact_resolved": fcr,
        "fcr": ratio(fcr, first),
        "contacts": contacts,
        "repeats": repeats,
        "repeat_rate": ratio(repeats, contacts),
        "resolved": resolved,
        "reopened": reopened,
        "reopen_rate": ratio(reopened, resolved),
    }


def retention_rate(customers: int, churned: int) -> float | None:
    """Post-contact retention: share of the customers with a contact in the day who did not churn within the horizon."""
    return ratio(customers - churned, customers)


# ------------------------------------------------------------------ agents

HANDLING_STATES = ("busy", "acw")


def agent_figures(ms_by_state: dict[str, int], handled: int, handle_ms: int) -> dict:
    """handling = busy + acw; staffed = every state but offline; utilization = handling / staffed;
    occupancy = handling / (handling + available); AHT = handle time / legs."""
    handling = sum(ms_by_state.get(s, 0) for s in HANDLING_STATES)
    staffed = sum(v for s, v in ms_by_state.items() if s != "offline")
    return {
        "utilization": ratio(handling, staffed),
        "occupancy": ratio(handling, handling + ms_by_state.get("available", 0)),
        "handled": handled,
        "aht_seconds": handle_ms / handled / 1000 if handled > 0 else None,
    }


# ------------------------------------------------------------------ capacity model

def expected_contacts_per_hour(slots: int, aht_s: float | None, availability: float, occupancy: float) -> float | None:
    """Staffed agents x concurrency (= slots) x 3600 / AHT x availability x occupancy; None without an AHT."""
    if aht_s is None or aht_s <= 0:
        return None
    return slots * 3600 / aht_s * availability * occupancy


def cost_per_contact(agent_hour_cost: float, staffed_hours: float, contacts: float | None) -> float | None:
    """Agent cost of the staffed hours divided by the contacts they handled; None when no contact."""
    if contacts is None or contacts <= 0:
        return None
    return agent_hour_cost * staffed_hours / contacts
