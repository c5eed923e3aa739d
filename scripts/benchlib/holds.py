"""The worker's event-loop holds as a benchmark reads them from /metrics (kpi_event_loop_hold_*), and
whether they meet the target; "not exported" when the worker has none."""
from __future__ import annotations

from .report import TARGETS, labels_of


HOLD = "kpi_event_loop_hold_seconds"


HOLD_MAX = "kpi_event_loop_hold_max_seconds"


STEP_MAX = "kpi_event_loop_step_max_seconds"


def loop_holds(samples: dict[str, float]) -> dict:
    """The worker's event-loop holds from one /metrics scrape: the longest since it started (gauge), the
    histogram's count, sum and observations over 100 / 250 ms, each timed step's longest section.
    {"exported": False} when the worker has none of these series (never an estimate)."""
    count = samples.get(f"{HOLD}_count")
    longest = samples.get(HOLD_MAX)
    steps = {labels_of(k).get("step", "?"): v for k, v in samples.items() if k.startswith(STEP_MAX + "{")}
    if count is None and longest is None and not steps:
        return {"exported": False}
    buckets = {}
    for k, v in samples.items():
        if k.startswith(f"{HOLD}_bucket{{"):
            le = labels_of(k).get("le", "")
            buckets[float("inf") if le == "+Inf" else float(le)] = v
    over = {}
    for bound in (0.1, 0.25):
        if count is not None and bound in buckets:
            over[f"over_{round(bound * 1000)}ms"] = count - buckets[bound]
    return {"exported": True, "longest_s": longest, "samples": count, "sum_s": samples.get(f"{HOLD}_sum"),
            **over, "step_longest_s": steps}


def hold_text(h: dict | None) -> str:
    if not h or not h.get("exported"):
        return f"not exported (no {HOLD} / {HOLD_MAX} on the worker's /metrics)"
    parts = [f"longest {h['longest_s'] * 1000:,.0f} ms" if h.get("longest_s") is not None
             else f"longest: not exported ({HOLD_MAX} absent)"]
    if h.get("samples") is not None:
        parts.append(f"{h['samples']:,.0f} samples" + "".join(
            f", {h[k]:,.0f} {k.replace('_', ' ')}" for k in ("over_100ms", "over_250ms") if k in h))
    if h.get("step_longest_s"):
        worst = sorted(h["step_longest_s"].items(), key=lambda kv: -kv[1])[:3]
        parts.append("steps " + ", ".join(f"{k} {v * 1000:,.0f} ms" for k, v in worst))
    return "; ".join(parts)


def hold_met(h: dict | None) -> str:
    if not h or h.get("longest_s") is None:
        return "not measured"
    return "met" if h["longest_s"] <= TARGETS["loop_hold_s"] else "NOT met"
