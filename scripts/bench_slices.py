"""The longest single core call of each step a worker runs on its event loop, in-process (issue 19).

A worker's stage holds the loop for as long as one call into the core takes between two slicer
pauses (processor/loophold.py). This runs a log through the books in the worker's order, without
Kafka: batches of --batch events into stage one, the batch's facts into stage two and the journey
book, the journey contributions into stage two, a publication in ADVANCE_LIMIT slices, each book's
changed keys taken (whole, or TAKE_LIMIT keys a call with --sliced), and a housekeeping pass in
EXPIRE_LIMIT slices every --expire-every events. It prints the longest call of each step, in CPU
time of this process (a busy machine stretches wall time, not this) and wall time. The cycle
collector is off (the worker's step times exclude its passes too; its pauses are gc_policy's
business). One book set for the whole log, as `kpi replay`: a worker with 4 partitions holds about a
quarter of this in each book, so these are upper bounds for the same batch size.

    PYTHONPATH=. python scripts/bench_slices.py --input real.jsonl            # take_dirty() whole
    PYTHONPATH=. python scripts/bench_slices.py --input real.jsonl --sliced   # take_dirty(TAKE_LIMIT)

The core is the compiled one when it was built from this tree's source (python -m processor.native),
else the pure-Python source; the first line says which.
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
from processor.core.contacts import ContactBook  # noqa: E402
from processor.core.journeys import JourneyBook  # noqa: E402
from processor.core.queues import QueueBook  # noqa: E402
from processor.decode import decode  # noqa: E402
from processor.worker.housekeeping import EXPIRE_LIMIT  # noqa: E402
from processor.worker.stages import ADVANCE_LIMIT, BATCH_MAX  # noqa: E402
from processor.worker.tables import TAKE_LIMIT  # noqa: E402


class Steps:
    """The longest call (CPU and wall) per step name, and how many calls."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def time(self, name: str, fn, *args):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args)
        dc, dt = time.process_time() - c, time.perf_counter() - t
        self.cpu[name] = max(self.cpu[name], dc)
        self.wall[name] = max(self.wall[name], dt)
        self.calls[name] += 1
        return out


def drain(steps: Steps, name: str, take, sliced: bool) -> None:
    """A take_dirty-like call, whole or TAKE_LIMIT keys a call until fewer come back (as the worker does)."""
    if not sliced:
        steps.time(name, take)
        return
    while True:
        got = steps.time(name, take, TAKE_LIMIT)
        if (sum(len(d) for d in got) if isinstance(got, tuple) else len(got)) < TAKE_LIMIT:
            return


def run(path: Path, batch: int, expire_every: int, sliced: bool) -> tuple[Steps, int]:
    engine = Settings().engine()
    contacts, queues, journeys = ContactBook(engine), QueueBook(engine), JourneyBook(engine)
    steps = Steps()
    events = 0
    since_expiry = 0
    with open(path, "rb") as f:
        lines = f.readlines()
    for i in range(0, len(lines), batch):
        deltas, agent_deltas, journey_deltas = [], [], []

        def stage_one(chunk):
            for line in chunk:
                res = contacts.ingest(decode(line, precheck=True))  # as the worker decodes
                deltas.extend(res.deltas)
                agent_deltas.extend(res.agent_deltas)
                journey_deltas.extend(res.journey_deltas)

        steps.time("stage one: events (a whole batch; sliced per event)", stage_one, lines[i:i + batch])
        n = len(lines[i:i + batch])
        events += n
        since_expiry += n

        def facts():
            queues.apply_all(deltas)
            queues.apply_all(agent_deltas)
            for fid, route, fact in journey_deltas:
                journeys.apply(fid, fact, route)
            journeys.observe(contacts.stream_ms)

        steps.time("facts (a whole batch; sliced per fact)", facts)
        contributions = steps.time("journeys: take_deltas", journeys.take_deltas)
        steps.time("stage two: facts (contributions)", queues.apply_all, contributions)
        queues.observe(contacts.stream_ms)
        while True:
            steps.time("stage two: advance(ADVANCE_LIMIT)", queues.advance, ADVANCE_LIMIT)
            if not queues.advancing:
                break
        drain(steps, "stage one: take_dirty", contacts.take_dirty, sliced)
        drain(steps, "stage one: take_dirty_profiles", contacts.take_dirty_profiles, sliced)
        drain(steps, "stage one: take_dirty_customers", contacts.take_dirty_customers, sliced)
        drain(steps, "stage one: take_dirty_agent_ids", contacts.take_dirty_agent_ids, sliced)
        drain(steps, "stage two: take_dirty", queues.take_dirty, sliced)
        drain(steps, "journeys: take_dirty", journeys.take_dirty, sliced)
        if since_expiry >= expire_every:
            since_expiry = 0
            for name, book in (("housekeeping (one)", contacts), ("housekeeping (two)", queues),
                               ("housekeeping (journeys)", journeys)):
                while steps.time(name + ": expire(EXPIRE_LIMIT)", book.expire, EXPIRE_LIMIT) == EXPIRE_LIMIT:
                    pass
            queues.apply_all(journeys.take_deltas())
    return steps, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, type=Path, help="contract events, JSON lines")
    ap.add_argument("--batch", type=int, default=BATCH_MAX, help=f"events per stage-one batch (default {BATCH_MAX})")
    ap.add_argument("--expire-every", type=int, default=65_000,
                    help="events between housekeeping passes (default 65,000: 5 s at 13,000 events/s)")
    ap.add_argument("--sliced", action="store_true", help=f"take changed keys {TAKE_LIMIT} a call, as the worker does")
    args = ap.parse_args()
    print(f"{describe()}; take_dirty {'in slices of ' + str(TAKE_LIMIT) if args.sliced else 'whole'}; "
          f"batches of {args.batch:,} events; housekeeping every {args.expire_every:,} events", file=sys.stderr)
    gc.disable()
    t0 = time.perf_counter()
    steps, events = run(args.input, args.batch, args.expire_every, args.sliced)
    print(f"{events:,} events in {time.perf_counter() - t0:.1f} s (wall); longest single call per step:")
    for name in sorted(steps.cpu, key=lambda k: -steps.cpu[k]):
        print(f"  {name:<48} {steps.cpu[name] * 1000:9.1f} ms CPU {steps.wall[name] * 1000:9.1f} ms wall"
              f"  ({steps.calls[name]:,} calls)")


if __name__ == "__main__":
    main()
