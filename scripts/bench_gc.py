"""The cycle collector's pauses while the books take in a log, under the worker's collector policy (issue 19).

The worker runs processor/gc_policy.GcPolicy.tick every FREEZE_SECONDS; here the same tick runs
between two events once that much wall time has passed, while the log goes through every book (as
`kpi replay`, one book set), and gc.callbacks time every collection. `--policy before` is the policy
the worker had until branch holds19b: CPython's own thresholds, and a gc.freeze() every second.
Prints the longest pause per generation (CPU time of this process and wall time), how many, their
total, and what the collections found.

    PYTHONPATH=. python scripts/bench_gc.py --input real.jsonl --events 200000 --policy before
    PYTHONPATH=. python scripts/bench_gc.py --input real.jsonl --events 200000 --policy after
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.config import Settings  # noqa: E402
from processor.core import describe  # noqa: E402
from processor.core.pipeline import Pipeline  # noqa: E402
from processor.decode import decode  # noqa: E402
from processor.gc_policy import FREEZE_SECONDS, GcPolicy  # noqa: E402


class Before:
    """The policy until holds19b: CPython's thresholds, a freeze every second (sweep not reached here)."""

    def tick(self) -> None:
        gc.freeze()

    def stop(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, type=Path)
    ap.add_argument("--events", type=int, default=200_000, help="events read from the log (default 200,000)")
    ap.add_argument("--policy", choices=("before", "after"), required=True)
    args = ap.parse_args()
    policy, every = (Before(), 1.0) if args.policy == "before" else (GcPolicy(), FREEZE_SECONDS)
    longest_cpu: dict[int, float] = defaultdict(float)
    longest_wall: dict[int, float] = defaultdict(float)
    total: dict[int, float] = defaultdict(float)
    count: dict[int, int] = defaultdict(int)
    found: dict[int, int] = defaultdict(int)
    start: list[float] = [0.0, 0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            start[0], start[1] = time.process_time(), time.perf_counter()
            return
        g = info["generation"]
        cpu, wall = time.process_time() - start[0], time.perf_counter() - start[1]
        longest_cpu[g] = max(longest_cpu[g], cpu)
        longest_wall[g] = max(longest_wall[g], wall)
        total[g] += cpu
        count[g] += 1
        found[g] += info["collected"]

    p = Pipeline(Settings().engine())
    print(f"{describe()}; policy {args.policy} (tick every {every:g} s)", file=sys.stderr)
    gc.collect()
    gc.callbacks.append(callback)
    t0 = c0 = 0.0
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        due = t0 + every
        n = 0
        with open(args.input, "rb") as f:
            for line in f:
                p.feed(decode(line))
                n += 1
                if n % 1000 == 0:
                    p.clear_dirty()  # as replay does
                if time.perf_counter() >= due:
                    policy.tick()
                    due = time.perf_counter() + every
                if n >= args.events:
                    break
    finally:
        gc.callbacks.remove(callback)
        policy.stop()
        gc.unfreeze()
    cpu = time.process_time() - c0
    print(f"{n:,} events in {time.perf_counter() - t0:.1f} s wall, {cpu:.1f} s CPU; collections:")
    for g in sorted(count):
        print(f"  generation {g}: {count[g]:6,} passes, longest {longest_cpu[g] * 1000:7.1f} ms CPU "
              f"({longest_wall[g] * 1000:7.1f} ms wall), total {total[g]:6.2f} s CPU, found {found[g]:,} objects")


if __name__ == "__main__":
    main()
