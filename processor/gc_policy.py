"""Garbage collection for a worker whose state is millions of long-lived objects.

CPython's full collection walks every tracked object. The books keep each contact, fact and
bucket for hours of event time, so at 2,000 events/s a full collection ran every 3-5 s and took
0.1 s, then 1.2 s as the state grew (gc.callbacks in a benchmark run), collecting almost
nothing: the gauges stalled for as long each time. The state is freed by reference counting
when it expires, not by the cycle collector, so every FREEZE_SECONDS what exists is moved out of
the collector's sight (gc.freeze): a full collection then walks only what was made since, which
kept it under about 0.1 s. Every SWEEP_SECONDS the frozen objects are collected once (one full
pass) in case some became cyclic garbage meanwhile: objects that were alive at a freeze (a batch
in flight, futures and frames of the event loop) and died later.

That sweep walks the whole state, and stops the worker while it does: 3.7 s at 3 GB of state in a
2,000 events/s soak (4 December), every 10 minutes as it was, so the gauges froze and the soak's
p99 latency was 2.1 s. The garbage it finds is small (2,237 objects after 10 minutes of that
soak), so it runs every 6 hours: between two sweeps some 80,000 such objects wait, a few MiB.

A freeze leaves CPython's count of long-lived objects near zero, so the next full collections
come soon and walk whatever survived since the freeze. At catch-up speed that was up to 0.42 s per
full collection with a freeze every 5 s (kpi_event_loop_step_max_seconds{step="garbage collector
(generation 2)"}, issue 19, docs/performance.md): the freeze came every second, and then every
quarter of a second: at a freeze every second, full collections of 20-50 ms (CPU time of the loop's
thread) were a third of every event-loop hold over 60 ms in the 30-day catch-up; every 0.25 s they
walk a quarter of that (118 full collections over 20 ms in one catch-up, 12 in the next). A freeze
is cheap (CPython splices its lists). The sweep's interval is a setting (`gc_sweep_hours`).
"""
from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("processor")

FREEZE_SECONDS = 0.25
SWEEP_SECONDS = 6 * 3600.0


class GcPolicy:
    def __init__(self, clock=time.monotonic, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.clock, self.sweep_seconds = clock, sweep_seconds
        self.last_sweep = clock()
        self.sweeps = 0

    def tick(self) -> None:
        """Freeze what exists now; sweep the frozen objects every sweep_seconds."""
        now = self.clock()
        if now - self.last_sweep >= self.sweep_seconds:
            gc.unfreeze()
            t0 = time.perf_counter()
            found = gc.collect()
            self.sweeps += 1
            self.last_sweep = now
            log.info("garbage sweep: %d unreachable objects in %.0f ms", found, (time.perf_counter() - t0) * 1000)
        gc.freeze()
