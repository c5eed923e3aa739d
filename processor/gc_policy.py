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
(generation 2)"}, issue 19, docs/performance.md): the freeze now comes every second, so a full
collection walks at most about a second's worth of new state.

That was still too long, and too often: CPython starts a full collection whenever the objects
promoted since the last one exceed a quarter of what that one kept, which after a freeze is little,
so at catch-up speed full collections ran several times a second, each walking everything made
since the freeze (up to 0.44 s in docs/performance.md). So the collector never starts a full
collection by itself here (its generation-2 threshold is set out of reach, FULL_THRESHOLD); every
FREEZE_SECONDS the tick does one, over what was made since the last freeze only (the rest is
frozen), then freezes what survived. A full collection thus walks at most FREEZE_SECONDS of new
state, once per FREEZE_SECONDS, and cyclic garbage made meanwhile is still found at the next tick,
not left to the sweep. Young collections stay CPython's own: they walk at most the generation 0
and 1 thresholds' worth of objects (700 x 10), whatever the state.

Why every second and not more often: a full collection has a cost of its own besides the objects it
walks. scripts/bench_gc.py (200,000 events of a realistic log through the books, compiled core,
a tick every 0.25 s of wall time on a machine at load 20): ticks every 0.25 s made 461 full
collections, longest 19 ms CPU, 3.7 s CPU in all (the run took 14.7 s CPU); every second 93, longest
32 ms, 1.0 s in all (11.1 s CPU); the policy before (freeze every second, CPython's thresholds) made
none in that loop (10.0 s CPU) - its full collections came in the worker, whose event loop, Faust and
aiokafka make garbage of their own (up to 0.44 s wall, docs/performance.md).
"""
from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("processor")

FREEZE_SECONDS = 1.0
SWEEP_SECONDS = 6 * 3600.0
FULL_THRESHOLD = 1 << 30  # generation-2 threshold: CPython never starts a full collection itself


class GcPolicy:
    def __init__(self, clock=time.monotonic, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.clock, self.sweep_seconds = clock, sweep_seconds
        self.last_sweep = clock()
        self.sweeps = 0
        self.found = 0  # unreachable objects the ticks' full collections found (not the sweeps')
        self._thresholds: tuple[int, int, int] | None = None  # CPython's, while this policy runs

    def tick(self) -> None:
        """Collect what was made since the last tick and freeze what survived; sweep the frozen objects
        every sweep_seconds. The first tick takes full collections out of CPython's hands."""
        if self._thresholds is None:  # the first tick only freezes: a full collection now would walk everything
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self._thresholds[0], self._thresholds[1], FULL_THRESHOLD)
            gc.freeze()
            return
        now = self.clock()
        if now - self.last_sweep >= self.sweep_seconds:
            gc.unfreeze()
            t0 = time.perf_counter()
            found = gc.collect()
            self.sweeps += 1
            self.last_sweep = now
            log.info("garbage sweep: %d unreachable objects in %.0f ms", found, (time.perf_counter() - t0) * 1000)
        else:
            self.found += gc.collect(2)  # the frozen objects are not walked: only what is new since the last tick
        gc.freeze()

    def stop(self) -> None:
        """CPython's own thresholds back (tests; a worker keeps this policy until it exits)."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
