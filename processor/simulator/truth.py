"""Ground truth: the contract's `queue_interval` figures computed by hand from the simulator's own
segment and leg records, independently of `processor.core`, so tests can check the core against it."""
from __future__ import annotations

from typing import Iterable

from .clock import iso_ms
from .state import LegRecord, SegmentRecord

def truth_records(segments: Iterable[SegmentRecord], legs: Iterable[LegRecord], settings) -> list[dict]:
    """Per queue, channel and interval, the contract's `queue_interval` figures (contract §2), by hand.

    Counts and millisecond sums are integers; the ratios are computed once, at the end, as the
    contract defines them (None when the denominator is zero).
    """
    iv = settings.interval_ms
    buckets: dict[tuple[str, str, int], dict] = {}

    def bucket(queue: str, channel: str, end: int) -> dict:
        key = (queue, channel, end - end % iv)
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = {"answered": 0, "abandoned": 0, "flowed_out": 0, "short_abandoned": 0,
                                "answered_within": 0, "abandoned_within": 0, "answered_wait_ms": 0,
                                "max_wait_ms": None, "handled": 0, "talk_ms": 0, "hold_ms": 0, "acw_ms": 0}
        return b

    for seg in segments:
        q = settings.queue(seg.queue_id)
        threshold_ms, short_ms = round(q.threshold_seconds * 1000), round(q.short_abandon_seconds * 1000)
        b = bucket(seg.queue_id, seg.channel, seg.end_ms)
        wait = seg.end_ms - seg.start_ms
        b[seg.outcome] += 1
        if seg.outcome == "answered":
            b["answered_wait_ms"] += wait
            b["answered_within"] += wait <= threshold_ms
        elif seg.outcome == "abandoned":
            b["abandoned_within"] += wait <= threshold_ms
            b["short_abandoned"] += wait < short_ms
        if b["max_wait_ms"] is None or wait > b["max_wait_ms"]:
            b["max_wait_ms"] = wait
    for leg in legs:
        b = bucket(leg.queue_id, leg.channel, leg.end_ms)
        b["handled"] += 1
        b["talk_ms"] += leg.talk_ms
        b["hold_ms"] += leg.hold_ms
        b["acw_ms"] += leg.acw_ms

    def ratio(n: int, d: int) -> float | None:
        return n / d if d > 0 else None

    out = []
    for (queue, channel, start) in sorted(buckets, key=lambda k: (k[2], k[0], k[1])):
        b = buckets[(queue, channel, start)]
        q = settings.queue(queue)
        offered = b["answered"] + b["abandoned"] + b["flowed_out"]
        handled = b["handled"]
        out.append({
            "kind": "queue_interval",
            "interval_start": iso_ms(start),
            "interval_end": iso_ms(start + iv),
            "queue_id": queue,
            "channel": channel,
            "threshold_seconds": q.threshold_seconds,
            "short_abandon_seconds": q.short_abandon_seconds,
            "service_level_target": q.service_level_target,
            "offered": offered,
            "answered": b["answered"],
            "abandoned": b["abandoned"],
            "short_abandoned": b["short_abandoned"],
            "flowed_out": b["flowed_out"],
            "answered_within_threshold": b["answered_within"],
            "abandoned_within_threshold": b["abandoned_within"],
            "service_level": {
                "answered_over_offered": ratio(b["answered_within"], offered - b["short_abandoned"]),
                "answered_over_answered": ratio(b["answered_within"], b["answered"]),
                "abandons_positive": ratio(b["answered_within"] + b["abandoned_within"],
                                           b["answered"] + b["abandoned"]),
            },
            "asa_seconds": b["answered_wait_ms"] / b["answered"] / 1000 if b["answered"] else None,
            "abandon_rate": ratio(b["abandoned"] - b["short_abandoned"], offered - b["short_abandoned"]),
            "max_wait_seconds": None if b["max_wait_ms"] is None else b["max_wait_ms"] / 1000,
            "handled": handled,
            "aht_seconds": (b["talk_ms"] + b["hold_ms"] + b["acw_ms"]) / handled / 1000 if handled else None,
            "talk_seconds": b["talk_ms"] / 1000,
            "hold_seconds": b["hold_ms"] / 1000,
            "acw_seconds": b["acw_ms"] / 1000,
        })
    return out
