"""`kpi replay` on a log with real-data customer keys, against the same log with a distinct customer
per contact (issue 19; a benchmark, not a test).

    python scripts/bench_hotkeys.py [--contacts 100000] [--busy 22000] [--days 7] [--share 0.55]
                                    [--seed 19] [--work DIR] [--keep] [--profile]

The realistic log (tests/hotkeys.py): `--share` of the contacts under the placeholder id `0`, the
identified customers Zipf-distributed, one account ("acct-busy") with `--busy` contacts inside six
days (inside the default recontact window W = 7 days); about 5.7 events per contact. The baseline is
the same events with every contact's customer id made unique. Each log is replayed by `kpi replay` in
a subprocess (the compiled core if `python -m processor.native` built this source; the summary says
which), wall time measured around it. With --profile, the realistic replay runs under py-spy (when
installed) and the longest housekeeping pass of the journey book is timed in-process.

Figures on stdout; progress on stderr; files in --work (a temporary folder, deleted unless --keep).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from processor.core import describe as describe_core  # noqa: E402
from tests.hotkeys import realistic_events, write_jsonl  # noqa: E402

DAY_MS = 86_400_000


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def replay(path: Path, out: Path) -> tuple[float, float, int, str]:
    """Wall seconds and CPU seconds (its processes: replay runs stage one in a second one) of
    `kpi replay` on path, events it read, and its summary line. On a shared machine the CPU figure
    is the steadier one."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "processor.cli", "replay", "--input", str(path), "--output", str(out),
                           "--not-after", "none"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode:
        sys.exit(f"kpi replay failed:\n{proc.stderr[-2000:]}")
    summary = next((line.strip() for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip().startswith("replayed")), "")
    events = sum(1 for _ in open(path))
    return seconds, cpu, events, summary


def longest_steps(path: Path) -> dict:
    """In-process: the pipeline fed the log, the longest single feed (one event through every book),
    apart from the feeds that also ran a housekeeping pass (every EXPIRE_EVERY events), in CPU time
    of this process (on a shared machine, wall time mostly measures waiting for a core) and in wall
    time. What exists is frozen out of the cycle collector's sight every 5,000 events, as the worker
    does (processor/gc_policy.py): a full collection over the whole state is another matter."""
    import gc

    from processor.config import Settings
    from processor.core.pipeline import EXPIRE_EVERY, Pipeline
    from processor.decode import decode

    p = Pipeline(Settings().engine())
    worst = {"event_cpu": 0.0, "event_with_housekeeping_cpu": 0.0, "event_wall": 0.0,
             "event_with_housekeeping_wall": 0.0}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            e = decode(line)
            c, t = time.process_time(), time.perf_counter()
            p.feed(e)
            dc, dt = time.process_time() - c, time.perf_counter() - t
            key = "event_with_housekeeping" if n % EXPIRE_EVERY == 0 else "event"
            worst[key + "_cpu"] = max(worst[key + "_cpu"], dc)
            worst[key + "_wall"] = max(worst[key + "_wall"], dt)
            if n % 1000 == 0:
                p.clear_dirty()  # as replay does: nothing persists
            if n % 5000 == 0:
                gc.freeze()
    return {f"longest_{k}_ms": round(v * 1000, 2) for k, v in worst.items()}


def growth(total: int = 40_000, seed: int = 19) -> list[dict]:
    """CPU microseconds per journey fact as one customer's history grows: `total` contacts of one
    customer inside W (35 % without issue, the rest over 50 issues, arriving up to 10 minutes out of
    order), each then resolved; the cost of each block of 1,000 facts as the customer holds more."""
    import random

    from processor.config import Settings
    from processor.core.journeys import JourneyBook

    rnd = random.Random(seed)
    book = JourneyBook(Settings().engine())
    t0 = 1_772_409_600_000
    step = 6 * DAY_MS // total
    out, block, held = [], [], 0
    for i in range(total):
        created = t0 + i * step + rnd.randrange(600_000)
        issue = None if rnd.random() < 0.35 else f"i{rnd.randrange(50)}"
        fact = ("contact", "acct-busy", issue, created, "voice", "Q1", None, None)
        t = time.process_time()
        book.apply(f"j|b{i}", fact)
        book.apply(f"j|b{i}", fact[:6] + (created + 300_000, None))
        book.take_deltas()
        block.append(time.process_time() - t)
        held += 1
        if len(block) == 1000:
            out.append({"contacts_held": held, "us_per_fact": round(sum(block) / 2000 * 1e6, 1)})
            block = []
    return [out[0], out[len(out) // 4], out[len(out) // 2], out[-1]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--busy", type=int, default=22_000, help="contacts of the one busy account (inside 6 days)")
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--share", type=float, default=0.55, help="share of contacts under the placeholder id 0")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--work", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-hotkeys-"))
    work.mkdir(parents=True, exist_ok=True)
    span = int(args.days * DAY_MS)
    busy_span = min(span, 6 * DAY_MS)
    logs = {}
    for name, distinct in (("realistic", False), ("distinct", True)):
        print(f"generating the {name} log ({args.contacts:,} contacts)...", file=sys.stderr)
        events = realistic_events(args.contacts, span, seed=args.seed, placeholder_share=args.share,
                                  busy_contacts=args.busy, busy_span_ms=busy_span, distinct=distinct)
        if not distinct:
            created = collections.Counter(e["customer_id"] for e in events if e["type"] == "contact.created")
            total = sum(created.values())
            shape = {"contacts": total, "placeholder_share": round(created["0"] / total, 3),
                     "busy_account_contacts": created["acct-busy"], "identified_customers": len(created) - 1,
                     "top_identified": [c for c, _ in created.most_common(5) if c != "0"][:3]}
        logs[name] = work / f"{name}.jsonl"
        write_jsonl(events, logs[name])
    print(f"core: {describe_core()}", file=sys.stderr)
    results = {"core": describe_core(), "log": shape}
    for name, path in logs.items():
        print(f"kpi replay on the {name} log...", file=sys.stderr)
        seconds, cpu, events, summary = replay(path, work / f"{name}.out.jsonl")
        results[name] = {"events": events, "seconds": round(seconds, 2), "events_per_second": round(events / seconds),
                         "cpu_seconds": round(cpu, 2), "events_per_cpu_second": round(events / cpu), "summary": summary}
    results["ratio"] = round(results["realistic"]["events_per_second"] / results["distinct"]["events_per_second"], 3)
    results["ratio_cpu"] = round(results["realistic"]["events_per_cpu_second"]
                                 / results["distinct"]["events_per_cpu_second"], 3)
    print("journey book alone: cost per fact as one customer's history grows...", file=sys.stderr)
    results["growth"] = growth()
    if args.profile:
        print("timing every feed and housekeeping pass in-process (realistic log)...", file=sys.stderr)
        results["steps"] = longest_steps(logs["realistic"])
        if shutil.which("py-spy"):
            svg = work / "realistic.py-spy.svg"
            subprocess.run(["py-spy", "record", "-o", str(svg), "--", sys.executable, "-m", "processor.cli", "replay",
                            "--input", str(logs["realistic"]), "--output", str(work / "profiled.jsonl"),
                            "--not-after", "none"], env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True)
            results["py_spy"] = str(svg)
    print(json.dumps(results, indent=2))
    r, d = results["realistic"], results["distinct"]
    print(f"\nrealistic: {r['events']:,} events in {r['seconds']} s = {r['events_per_second']:,} events/s wall, "
          f"{r['events_per_cpu_second']:,} events per CPU-second "
          f"(placeholder share {shape['placeholder_share']}, busy account {shape['busy_account_contacts']:,} contacts)")
    print(f"distinct customers: {d['events']:,} events in {d['seconds']} s = {d['events_per_second']:,} events/s wall, "
          f"{d['events_per_cpu_second']:,} events per CPU-second")
    print(f"ratio realistic / distinct: {results['ratio']} wall, {results['ratio_cpu']} CPU  "
          f"(targets: >= 50,000 events/s and >= 0.6)")
    print("journey book, one customer: " + ", ".join(f"{g['us_per_fact']} us/fact at {g['contacts_held']:,} contacts"
                                                     for g in results["growth"]))
    if "steps" in results:
        print(f"longest single feed (one event through every book, in-process): {results['steps']}")
    if args.keep or args.work:
        print(f"files kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
