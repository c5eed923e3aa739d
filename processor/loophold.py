"""How long the event loop is held, measured from outside, and the slices long passes are cut into.

Everything a worker serves (/metrics, /healthz, the Redis snapshot, Faust's heartbeats and commits)
runs on one asyncio loop: a step that computes for a second without an `await` that suspends
freezes all of it for that second (issue 19: 93 s in one tick, 115 s in one housekeeping pass).

`HoldMonitor.run` is a task that sleeps `period` seconds again and again; how much later than asked
it wakes up is how long the loop was busy with something else (its *lag*). That needs no
cooperation from the step that held the loop, so the histogram also sees Faust, aiokafka, the
garbage collector and steps nobody timed. Each sample is one observation: a loop that is never held
fills the lowest bucket `1 / period` times a second. To *name* the step in the warning, the steps
time their own synchronous sections (`with monitor.step("housekeeping"):`, around code with no
`await` that suspends); a lag over `warn_seconds` is logged with the sections that overlapped it.

`Slicer` cuts a long pass into slices of about `budget` seconds of loop time: between two items
of the pass the caller does `await slicer.pause()`, which suspends (lets every other ready task
run) once the slice is used up. Time-based rather than every N items, so a slice stays short
whatever an item costs; a budget of 0 yields between every two items (the tests use it).

Slices of different passes share the loop: the stages, a housekeeping slice and /metrics that are
ready at the same moment run one after the other before the loop comes back to anything else, so
the loop is held for the *sum* of their slices (30-day catch-up, 5 December: holds of 60-110 ms made
of three 20-30 ms slices of the three stages). A slicer therefore also ends its slice once the loop's
*turn* is used up: `TURN_SECONDS` since the monitor last woke up (`HoldMonitor.woke`, the moment the
loop last got round to a timer). Every slice that is ready then does one item and yields, until the
loop has been round; the slices of one turn share its budget instead of adding theirs up.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from contextlib import contextmanager

log = logging.getLogger("processor")

PERIOD_SECONDS = 0.01        # the monitor's sleep: holds shorter than this are seen as ~0
WARN_SECONDS = 0.25          # a hold this long is logged, naming the steps it overlapped
SLICE_SECONDS = 0.01         # a sliced pass suspends after this much loop time (the stages slice side by side)
TURN_SECONDS = 0.02          # ... and every sliced pass suspends once the loop has not been round for this long
# Upper bounds (seconds) of the hold histogram; the target is 0.1, the warning 0.25.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SECTIONS_KEPT = 256          # recent step sections kept to name a long hold
GC_SECTION_SECONDS = 0.005   # a young collection is recorded as a section from this long (a full one always)


class HoldMonitor:
    """The loop-lag histogram, the longest hold, and the recent sections of named steps."""

    def __init__(self, period: float = PERIOD_SECONDS, warn_seconds: float = WARN_SECONDS,
                 buckets: tuple[float, ...] = BUCKETS, clock=time.perf_counter) -> None:
        self.period, self.warn_seconds, self.buckets, self.clock = period, warn_seconds, buckets, clock
        self.counts = [0] * (len(buckets) + 1)  # per bucket (not cumulative); the last one is +Inf
        self.sum = 0.0
        self.count = 0
        self.max = 0.0            # the longest hold seen since the worker started
        self.max_step = ""        # what the longest hold overlapped ("" when no timed step did)
        # The same holds counted in the process's CPU time (see _watch): what a busy machine adds, waiting
        # for a core, is left out.
        self.cpu_counts = [0] * (len(buckets) + 1)
        self.cpu_sum = 0.0
        self.cpu_max = 0.0
        self.warnings = 0
        self._sections: deque = deque(maxlen=SECTIONS_KEPT)  # (start, end, step name)
        self._gc_start: float | None = None
        self.gc_seconds = 0.0     # time spent in the cycle collector while the monitor runs (all generations)
        self.step_max: dict[str, float] = {}  # step name -> its longest synchronous section, collector excluded
        # When the monitor last woke up, i.e. the loop last got round to its timers (while `run` runs; see
        # turn_over). inf: not running, no turn to share.
        self.woke = float("inf")
        self.turn_seconds = TURN_SECONDS

    def turn_over(self, now: float) -> bool:
        """Whether the slices running now have used up the loop's turn (module docstring)."""
        return now - self.woke >= self.turn_seconds

    # -- the steps' side ------------------------------------------------------------------------
    @contextmanager
    def step(self, name: str):
        """Time a synchronous section of a named step (no suspending `await` inside it)."""
        t0, gc0 = self.clock(), self.gc_seconds
        try:
            yield
        finally:
            self.section(name, t0, self.clock(), gc0)

    def section(self, name: str, start: float, end: float, gc_before: float | None = None) -> None:
        """A section of step `name` from `start` to `end`; with `gc_before` (gc_seconds at its start) its
        own time excludes the collector's passes inside it (they are sections of their own)."""
        self._sections.append((start, end, name))
        own = end - start - (self.gc_seconds - gc_before if gc_before is not None else 0.0)
        if own > self.step_max.get(name, 0.0):
            self.step_max[name] = own

    def _gc_callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = self.clock()
        elif self._gc_start is not None:
            now = self.clock()
            self.gc_seconds += now - self._gc_start
            generation = info.get("generation")
            if generation == 2 or now - self._gc_start >= GC_SECTION_SECONDS:  # not every young collection
                self.section(f"garbage collector (generation {generation})", self._gc_start, now)
            self._gc_start = None

    # -- the monitor's side ---------------------------------------------------------------------
    async def run(self) -> None:
        """Sleep `period` again and again, observing each oversleep; until cancelled. The cycle
        collector's own passes are timed as steps too (gc.callbacks): they stop whatever step runs."""
        clock, period = self.clock, self.period
        gc.callbacks.append(self._gc_callback)
        self.woke = clock()
        try:
            await self._watch(clock, period)
        finally:
            gc.callbacks.remove(self._gc_callback)
            self.woke = float("inf")

    async def _watch(self, clock, period: float) -> None:
        cpu = time.process_time
        while True:
            t0, c0 = clock(), cpu()
            await asyncio.sleep(period)
            now = self.woke = clock()
            hold = max(0.0, now - t0 - period)
            self.observe(hold, now)
            # The CPU time the process used over the window, as a share of it, times the hold: on an idle
            # machine the hold itself; when the worker waited for a core, only what it computed.
            window = now - t0
            self.observe_cpu(hold * min(1.0, (cpu() - c0) / window) if window > 0 else 0.0)

    def observe_cpu(self, hold: float) -> None:
        self.cpu_counts[self._bucket(hold)] += 1
        self.cpu_sum += hold
        if hold > self.cpu_max:
            self.cpu_max = hold

    def _bucket(self, hold: float) -> int:
        i = 0
        for bound in self.buckets:
            if hold <= bound:
                break
            i += 1
        return i

    def observe(self, hold: float, now: float | None = None) -> None:
        """One lag sample of `hold` seconds that ended at `now` (the monitor's clock)."""
        self.counts[self._bucket(hold)] += 1
        self.sum += hold
        self.count += 1
        if hold > self.max or hold >= self.warn_seconds:
            now = self.clock() if now is None else now
            named = self.named(now - hold, now)
            if hold > self.max:
                self.max, self.max_step = hold, named
            if hold >= self.warn_seconds:
                self.warnings += 1
                log.warning("the event loop was held %.2f s (%s): /metrics, the live snapshot and every stage "
                            "waited that long", hold, named or "no timed step: Faust, aiokafka, the garbage collector "
                            "or a stage's batch")

    def named(self, start: float, end: float) -> str:
        """The timed sections that overlapped [start, end], longest overlap first: 'tick 0.31 s, ...'."""
        overlap: dict[str, float] = {}
        for s, e, name in self._sections:
            shared = min(e, end) - max(s, start)
            if shared > 0:
                overlap[name] = overlap.get(name, 0.0) + shared
        return ", ".join(f"{name} {secs:.2f} s" for name, secs in sorted(overlap.items(), key=lambda kv: -kv[1]))

    def cumulative(self, counts: list[int] | None = None) -> list[tuple[str, int]]:
        """Prometheus histogram buckets: (upper bound, observations <= it), +Inf last."""
        out, total = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts if counts is None else counts):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


class Slicer:
    """Cuts a pass into slices of about `budget` seconds of loop time (see the module docstring).

    Given a monitor and a name, each slice is recorded as a section of that step (`done()` records
    the last one), so a long hold inside a sliced pass is named precisely."""

    def __init__(self, budget: float = SLICE_SECONDS, clock=time.perf_counter, monitor: HoldMonitor | None = None,
                 name: str = "") -> None:
        self.budget, self.clock, self.monitor, self.name = budget, clock, monitor, name
        self.start = clock()
        self._gc0 = monitor.gc_seconds if monitor is not None else 0.0
        self.yields = 0

    def due(self) -> bool:
        """The slice is used up: its own budget, or the loop's turn (module docstring)."""
        now = self.clock()
        return now - self.start >= self.budget or (self.monitor is not None and self.monitor.turn_over(now))

    async def pause(self) -> None:
        """Suspend once the slice is used up (other tasks run meanwhile), then start a new slice."""
        now = self.clock()
        if now - self.start >= self.budget or (self.monitor is not None and self.monitor.turn_over(now)):
            if self.monitor is not None:
                self.monitor.section(self.name, self.start, now, self._gc0)
            await asyncio.sleep(0)
            self.yields += 1
            self.start = self.clock()
            if self.monitor is not None:
                self._gc0 = self.monitor.gc_seconds

    def done(self) -> None:
        """The pass is over: its last slice is recorded."""
        if self.monitor is not None:
            self.monitor.section(self.name, self.start, self.clock(), self._gc0)


class HoldCollector:
    """kpi_event_loop_hold_seconds (histogram of lag samples), its maximum, and each timed step's longest section."""

    def __init__(self, monitor: HoldMonitor) -> None:
        self.monitor = monitor

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        m = self.monitor
        hist = HistogramMetricFamily(
            "kpi_event_loop_hold_seconds",
            f"How late a task sleeping {m.period:g} s woke up: how long the event loop was held by other work "
            "(one observation per wake-up).")
        hist.add_metric([], m.cumulative(), m.sum)
        yield hist
        longest = GaugeMetricFamily("kpi_event_loop_hold_max_seconds",
                                    "The longest event-loop hold seen since the worker started.")
        longest.add_metric([], m.max)
        yield longest
        cpu = HistogramMetricFamily(
            "kpi_event_loop_hold_cpu_seconds",
            "The same holds in the worker's CPU time: each hold times the share of its window the process "
            "was computing (a machine too busy to give the worker a core makes holds longer, not this).")
        cpu.add_metric([], m.cumulative(m.cpu_counts), m.cpu_sum)
        yield cpu
        cpu_longest = GaugeMetricFamily("kpi_event_loop_hold_cpu_max_seconds",
                                        "The longest hold in CPU time (see kpi_event_loop_hold_cpu_seconds).")
        cpu_longest.add_metric([], m.cpu_max)
        yield cpu_longest
        steps = GaugeMetricFamily("kpi_event_loop_step_max_seconds",
                                  "The longest synchronous section of each timed step since the worker started, "
                                  "the cycle collector's passes inside it excluded (they are steps of their own).",
                                  labels=["step"])
        for name, secs in sorted(m.step_max.items()):
            steps.add_metric([name], secs)
        yield steps
