"""The cycle collector's passes while the books take a log in-process, under the worker's policy or the one before (issue 19).

    python scripts/bench_gc.py --input real.jsonl [--events 800000] [--policy now|freeze-1s|none]

Runs the first --events events of the file through the books as scripts/bench_slices.py does (stage
one, stage two, journeys, publication in ADVANCE_LIMIT slices, housekeeping in EXPIRE_LIMIT slices),
with the collector on, while a thread applies the policy on a wall-clock timer as the worker's
garbage-collection timer does: `now` is processor/gc_policy.py (a young collection, then a freeze,
every FREEZE_SECONDS), `freeze-1s` a freeze every second (the policy until 5 December), `none`
CPython's defaults. Prints, per generation, the passes, their total and longest CPU time (of the
thread that ran each pass: the loop's, in a worker), and the events per CPU second.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import bench_slices  # noqa: E402  (the books in the worker's order)

from processor.core import describe  # noqa: E402
from processor.gc_policy import FREEZE_SECONDS, GcPolicy  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, type=Path, help="contract events, JSON lines")
    ap.add_argument("--events", type=int, default=800_000, help="events of the file to run (default 800,000)")
    ap.add_argument("--policy", choices=("now", "freeze-1s", "none"), default="now")
    args = ap.parse_args()
    passes: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def timed(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            passes[info["generation"]].append(time.thread_time() - started[0])

    policy, stop = GcPolicy(sweep_seconds=float("inf")), threading.Event()

    def timer() -> None:
        period = FREEZE_SECONDS if args.policy == "now" else 1.0
        while not stop.wait(period):
            if args.policy == "now":
                policy.tick()
            elif args.policy == "freeze-1s":
                gc.freeze()

    with tempfile.TemporaryDirectory(prefix="kpi-bench-gc-") as tmp:
        part = Path(tmp) / "events.jsonl"
        with open(args.input, "rb") as f, open(part, "wb") as g:
            for i, line in enumerate(f):
                if i >= args.events:
                    break
                g.write(line)
        print(f"{describe()}; policy {args.policy}; {args.events:,} events of {args.input}", file=sys.stderr)
        gc.callbacks.append(timed)
        threading.Thread(target=timer, daemon=True).start()
        cpu0 = time.process_time()
        _, events = bench_slices.run(part, bench_slices.BATCH_MAX, 65_000, True)
        cpu = time.process_time() - cpu0
        stop.set()
        gc.callbacks.remove(timed)
        gc.unfreeze()
    print(f"policy {args.policy}: {events:,} events, {cpu:.1f} s CPU ({events / cpu:,.0f} events per CPU second)")
    for generation, times in passes.items():
        if times:
            print(f"  generation {generation}: {len(times):,} passes, {sum(times) * 1000:,.0f} ms in all, "
                  f"longest {max(times) * 1000:.1f} ms")
        else:
            print(f"  generation {generation}: no pass")


if __name__ == "__main__":
    main()
