"""Additive counters of ended queue segments and agent legs, for one queue, channel and time bucket.

Every field is an integer (milliseconds for durations), so adding and retracting facts in any
order gives the same result bit for bit. Retraction exists because a late event can re-pair a
segment; the waits multiset keeps max wait correct when the longest segment is retracted.
"""
from __future__ import annotations

from .settings import QueueSettings

OUTCOMES = ("answered", "abandoned", "flowed_out")


class SegmentStats:
    __slots__ = (
        "answered", "abandoned", "flowed_out", "short_abandoned",
        "answered_within", "abandoned_within", "answered_wait_ms", "wait_ms",
        "handled", "talk_ms", "hold_ms", "acw_ms", "waits", "max_wait_ms",
    )

    def __init__(self) -> None:
        self.answered = 0
        self.abandoned = 0
        self.flowed_out = 0
        self.short_abandoned = 0
        self.answered_within = 0
        self.abandoned_within = 0
        self.answered_wait_ms = 0
        self.wait_ms = 0  # every ended segment's wait: the time at risk of abandoning (Erlang A patience)
        self.handled = 0
        self.talk_ms = 0
        self.hold_ms = 0
        self.acw_ms = 0
        self.waits: dict[int, int] = {}
        self.max_wait_ms: int | None = None

    @property
    def offered(self) -> int:
        return self.answered + self.abandoned + self.flowed_out

    def is_empty(self) -> bool:
        return self.offered == 0 and self.handled == 0

    def add_segment(self, outcome: str, wait_ms: int, q: QueueSettings, sign: int = 1) -> None:
        """Count (sign=+1) or retract (sign=-1) one ended segment."""
        within = wait_ms <= q.threshold_ms
        if outcome == "answered":
            self.answered += sign
            self.answered_wait_ms += sign * wait_ms
            if within:
                self.answered_within += sign
        elif outcome == "abandoned":
            self.abandoned += sign
            if within:
                self.abandoned_within += sign
            if wait_ms < q.short_abandon_ms:
                self.short_abandoned += sign
        else:
            self.flowed_out += sign
        self.wait_ms += sign * wait_ms
        n = self.waits.get(wait_ms, 0) + sign
        if n:
            self.waits[wait_ms] = n
        else:
            del self.waits[wait_ms]
        if sign > 0:
            if self.max_wait_ms is None or wait_ms > self.max_wait_ms:
                self.max_wait_ms = wait_ms
        elif wait_ms == self.max_wait_ms and n == 0:
            self.max_wait_ms = max(self.waits) if self.waits else None

    def add_leg(self, talk_ms: int, hold_ms: int, acw_ms: int, sign: int = 1) -> None:
        self.handled += sign
        self.talk_ms += sign * talk_ms
        self.hold_ms += sign * hold_ms
        self.acw_ms += sign * acw_ms

    def merge(self, other: "SegmentStats") -> None:
        """Add another bucket's counts (used to sum minute buckets into rolling windows)."""
        self.answered += other.answered
        self.abandoned += other.abandoned
        self.flowed_out += other.flowed_out
        self.short_abandoned += other.short_abandoned
        self.answered_within += other.answered_within
        self.abandoned_within += other.abandoned_within
        self.answered_wait_ms += other.answered_wait_ms
        self.wait_ms += other.wait_ms
        self.handled += other.handled
        self.talk_ms += other.talk_ms
        self.hold_ms += other.hold_ms
        self.acw_ms += other.acw_ms
        if other.max_wait_ms is not None and (self.max_wait_ms is None or other.max_wait_ms > self.max_wait_ms):
            self.max_wait_ms = other.max_wait_ms


WAIT_BUCKETS_MS = (5_000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000, 180_000, 300_000, 600_000)


class WaitHistogram:
    """Cumulative distribution of queue waits, for the `contact_queue_wait_seconds` histogram."""

    __slots__ = ("counts", "count", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * (len(WAIT_BUCKETS_MS) + 1)  # last slot: above every bound
        self.count = 0
        self.sum_ms = 0

    def add(self, wait_ms: int, sign: int = 1) -> None:
        i = 0
        for i, bound in enumerate(WAIT_BUCKETS_MS):
            if wait_ms <= bound:
                break
        else:
            i = len(WAIT_BUCKETS_MS)
        self.counts[i] += sign
        self.count += sign
        self.sum_ms += sign * wait_ms

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound in seconds as Prometheus writes it, cumulative count), ending with +Inf."""
        out, running = [], 0
        for bound, n in zip(WAIT_BUCKETS_MS, self.counts):
            running += n
            out.append((repr(bound / 1000), running))
        out.append(("+Inf", self.count))
        return out
