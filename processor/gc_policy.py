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

Between two freezes the young objects pile up: CPython starts a young collection when
allocations minus deallocations pass a threshold, and while expiry frees old state as fast as new
state comes in (a worker with 30 days of history catching up), that count stays near zero. The
young generation then held 153,293 objects, and the collection that finally came walked them for
148 ms. So each tick (every FREEZE_SECONDS, 20 ms: the loop's turn, processor/loophold.py) collects
the young generation first, which holds at most one tick's worth of new objects, then freezes:
collections never walk more than that, and cyclic garbage made within a tick is still freed.

The freezes came every 5 s, then every second, then every 0.25 s (issue 19, docs/performance.md);
at every second, full collections of 20-50 ms were a third of the event-loop holds over 60 ms in
the 30-day catch-up. A freeze is cheap (CPython splices its lists); the young collection walks what
was made since the last tick. What a freeze keeps that dies later as a cycle waits for the sweep:
cycles made per event do not exist any more (processor/decode.py: 2,800 a second from the schema
validator, until 5 December), what is left is a few connections a second (aiohttp transports).
The sweep's interval is a setting (`gc_sweep_hours`), once a day by default since 5 December (every 6
hours before): with the per-event cycles gone, 7-12 cyclic objects a second were left in a soak
scraped 5 times a second, i.e. up to a million small objects (about 100 MiB) waiting a day at that
rate, some 50 times fewer at a Prometheus scrape every 15 s; the pause of seconds comes once a day
instead of four times.
"""
from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("processor")

FREEZE_SECONDS = 0.02
SWEEP_SECONDS = 24 * 3600.0


class GcPolicy:
    def __init__(self, clock=time.monotonic, sweep_seconds: float = SWEEP_SECONDS) -> None:
        self.clock, self.sweep_seconds = clock, sweep_seconds
        self.last_sweep = clock()
        self.sweeps = 0

    def tick(self) -> None:
        """Collect the young objects and freeze what exists now; sweep the frozen objects every sweep_seconds."""
        now = self.clock()
        if now - self.last_sweep >= self.sweep_seconds:
            gc.unfreeze()
            t0 = time.perf_counter()
            found = gc.collect()
            self.sweeps += 1
            self.last_sweep = now
            log.info("garbage sweep: %d unreachable objects in %.0f ms", found, (time.perf_counter() - t0) * 1000)
        else:
            gc.collect(0)  # the young objects since the last tick: a bounded walk (module docstring)
        gc.freeze()
