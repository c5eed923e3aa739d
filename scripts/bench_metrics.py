"""How long one /metrics rendering takes with days of history in the books (a benchmark, not a test; issue 19).

    python scripts/bench_metrics.py [--history-days 30] [--scrapes 5] [--behind] [--profile-top 25]

Builds the books in this process from the soak's simulated center (scripts/soak_steady.py: the
realistic pool repeated day after day) through the core pipeline, with housekeeping every 10,000
events as `kpi replay` runs it, or, with --behind, with no housekeeping at all (what a worker's
books hold while its passes are behind during a catch-up). Then renders /metrics as a worker does
(its queue, worker and outcome collectors in a registry, prometheus_client's generate_latest) --scrapes times and prints
the time of each, the mean and the slowest, and with --profile-top the functions that took the most
(cProfile over one more rendering). The books are built once; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--behind" in sys.argv[1:]:
    # Behind subclasses Pipeline, which a compiled core does not allow (interpreted classes cannot inherit
    # from compiled ones): --behind runs the core from source (so did the figures in docs/performance.md).
    os.environ["KPI_PURE_PYTHON"] = "1"

from benchlib import bench_model, live_pool, pass_id_fields, progress  # noqa: E402

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from processor import core  # noqa: E402
from processor.config import Settings  # noqa: E402
from processor.core.pipeline import Pipeline  # noqa: E402
from processor.core.settings import DAY_MS  # noqa: E402
from processor.decode import decode  # noqa: E402
from processor.metrics.outcomes import OutcomeCollector  # noqa: E402
from processor.metrics.queues import QueueCollector  # noqa: E402
from processor.metrics.worker import WorkerCollector  # noqa: E402
from processor.worker.health import Health  # noqa: E402
from soak_steady import center  # noqa: E402


class Behind(Pipeline):
    """No housekeeping pass: everything stays in the books."""
    __slots__ = ()

    def expire(self) -> None:
        self.clear_dirty()


def build(days: float, behind: bool, seed: int) -> Pipeline:
    model = bench_model("realistic")
    pool = live_pool(seed, 200_000, model)
    now_ms = int(time.time() * 1000)
    first_ms = (now_ms // DAY_MS - int(days) - 2) * DAY_MS
    until = first_ms + round(days * DAY_MS)
    pipe = (Behind if behind else Pipeline)(Settings().engine())
    t0 = time.perf_counter()
    n = 0
    for ts, _key, value in center(pool, first_ms, pass_id_fields(model)):
        if ts > until:
            break
        pipe.feed(decode(value))
        n += 1
        if n % 200_000 == 0:
            progress(f"books: {n:,} events ({n / (time.perf_counter() - t0):,.0f}/s)")
            pipe.clear_dirty()
    pipe.clear_dirty()
    progress(f"books: {n:,} events in {time.perf_counter() - t0:.0f} s")
    return pipe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history-days", type=float, default=30)
    p.add_argument("--scrapes", type=int, default=5)
    p.add_argument("--behind", action="store_true", help="no housekeeping while the books are built")
    p.add_argument("--profile-top", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    progress(core.describe())
    pipe = build(args.history_days, args.behind, args.seed)
    q = pipe.queues
    print(f"books: {args.history_days:g} days, behind={args.behind}: {len(q.queues())} queue/channels, "
          f"{sum(len(v) for v in q.minutes.values()):,} minute buckets, "
          f"{sum(len(v) for v in q.intervals.values()):,} interval buckets, {len(q.facts):,} facts")
    rt = SimpleNamespace(queues={0: q}, health=Health(), stream_ms=q.stream_ms, watermark_ms=q.stream_ms,
                         offset_gaps=0, offset_repeats=0, offsets_held=0, fetch_stalls=0, output=None)
    registry = CollectorRegistry(auto_describe=False)  # the worker's book and worker families (worker/app.py)
    registry.register(QueueCollector(lambda: rt.queues.values()))
    registry.register(WorkerCollector(rt))
    registry.register(OutcomeCollector(lambda: rt.queues.values()))
    times = []
    body = b""
    for _ in range(args.scrapes):
        t0 = time.perf_counter()
        body = generate_latest(registry)
        times.append(time.perf_counter() - t0)
    # the same books give the same body; its digest lets a change show that the figures did not move
    # (kpi_last_event_age_seconds reads the wall clock: left out)
    stable = b"\n".join(line for line in body.splitlines() if not line.startswith(b"kpi_last_event_age_seconds"))
    print(f"/metrics: {len(body):,} bytes, {len(body.splitlines()):,} lines, sha256 {hashlib.sha256(stable).hexdigest()[:16]}")
    print(f"/metrics rendering: mean {sum(times) / len(times) * 1000:.1f} ms, slowest {max(times) * 1000:.1f} ms "
          f"over {len(times)} ({', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
    if args.profile_top:
        prof = cProfile.Profile()
        prof.enable()
        generate_latest(registry)
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(args.profile_top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
