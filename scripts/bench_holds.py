"""How long a worker catching up on a log holds its event loop (a benchmark, not a test; issue 19).

    python scripts/bench_holds.py --input real.jsonl [--partitions 4] [--timeout 900] [--bootstrap host:port]
                                  [--output holds.json] [--worker-env KPI_X=value ...]

Starts Apache Kafka (KRaft, as scripts/bench.py does) unless --bootstrap is given, produces the
file's events to a fresh input topic, starts one `kpi worker` from launch to every event processed
and zero lag (or --timeout: the figures are then those of the part it did, and say so), and prints
the worker's own measurement (processor/loophold.py): the longest hold, the histogram
`kpi_event_loop_hold_seconds`, the longest section of each timed step, and the warnings its log
holds. Progress goes to stderr, figures to stdout, the results as JSON to --output (default
holds.json in the run folder, which is printed). Without --keep the broker's and the worker's data are
deleted at the end (the logs stay).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (scripts/benchlib: broker, producer, catch-up measurement)

from processor.config import Settings  # noqa: E402
from processor.services.worker import parse_metrics  # noqa: E402


def _buckets(samples: dict[str, float], name: str) -> dict[str, int]:
    found = {benchlib.labels_of(k)["le"]: int(v) for k, v in samples.items() if k.startswith(name + "_bucket{")}
    return dict(sorted(found.items(), key=lambda kv: float(kv[0])))


def hold_figures(samples: dict[str, float]) -> dict:
    steps = {benchlib.labels_of(k)["step"]: round(v, 4) for k, v in samples.items()
             if k.startswith("kpi_event_loop_step_max_seconds{")}
    return {"max_seconds": samples.get("kpi_event_loop_hold_max_seconds"),
            "count": int(samples.get("kpi_event_loop_hold_seconds_count", 0)),
            "sum_seconds": round(samples.get("kpi_event_loop_hold_seconds_sum", 0.0), 3),
            "buckets": _buckets(samples, "kpi_event_loop_hold_seconds"),
            "cpu_max_seconds": samples.get("kpi_event_loop_hold_cpu_max_seconds"),
            "cpu_buckets": _buckets(samples, "kpi_event_loop_hold_cpu_seconds"),
            "step_max_seconds": dict(sorted(steps.items(), key=lambda kv: -kv[1]))}


class LoadWatch(threading.Thread):
    """The machine's 1-minute load average every 5 s: on a shared machine a worker waits for a core,
    and every hold it measures (wall clock) stretches accordingly."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="loadavg")
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(float(Path("/proc/loadavg").read_text().split()[0]))
            self.stop.wait(5)


def warnings_of(log_path: Path) -> list[str]:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [ln.strip() for ln in text.splitlines() if "the event loop was held" in ln]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="contract events, JSON lines (e.g. scripts/realistic_log.py)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the catch-up")
    ap.add_argument("--bootstrap")
    ap.add_argument("--output")
    ap.add_argument("--worker-env", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the broker's and the worker's data (else only logs and results)")
    args = ap.parse_args(argv)
    from processor.services import KpiWorker
    from processor.topics import ensure_topics

    run_dir = Path(tempfile.mkdtemp(prefix="kpi-holds-"))
    output = Path(args.output).resolve() if args.output else run_dir / "holds.json"
    benchlib.progress(f"run folder {run_dir}")
    with open(args.input, "rb") as fh:
        messages = [(benchlib.event_key(json.loads(line)), line.rstrip(b"\n")) for line in fh]
    _, topics, app_id = benchlib.run_names("holds")
    broker = worker = None
    results: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "input": args.input,
                     "events": len(messages), "host": benchlib.host_info()}
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker = benchlib.start_broker(run_dir)
            bootstrap = broker.bootstrap
        ensure_topics(Settings(app_id=app_id, kafka={"bootstrap": bootstrap, "partitions": args.partitions, **topics}))
        p = asyncio.run(benchlib.produce_bulk(bootstrap, topics["input_topic"], messages))
        benchlib.progress(f"produced {p['messages']:,} events to {topics['input_topic']}")
        n = len(messages)
        del messages
        env = benchlib.worker_env(argparse.Namespace(partitions=args.partitions, worker_env=args.worker_env), topics, app_id)
        worker = KpiWorker(bootstrap, work_dir=run_dir / "worker", env=env)
        benchlib.progress(f"kpi worker log: {worker.log_path}")
        load = LoadWatch()
        load.start()
        try:
            c = benchlib.measure_catchup([worker], n, benchlib.stage_topics(topics), args.partitions, timeout=args.timeout)
            results["catchup"] = c
            done = f"caught up: {benchlib.fmt_rate(c['events_per_s'])} ({c['seconds_first_event_to_zero_lag']:.1f} s)"
        except RuntimeError as exc:
            results["catchup"] = {"error": str(exc)}
            done = f"NOT caught up within {args.timeout:.0f} s ({str(exc).splitlines()[0]})"
        load.stop.set()
        results["load_average_1m"] = {"min": min(load.samples), "max": max(load.samples),
                                      "mean": round(sum(load.samples) / len(load.samples), 1)}
        samples = parse_metrics(_scrape(worker.url))
        results["processed"] = samples.get("kpi_events_processed_total")
        results["holds"] = hold_figures(samples)
        results["warnings"] = warnings_of(worker.log_path)
        results["worker_log"] = str(worker.log_path)
    finally:
        if worker is not None:
            worker.stop()
        if broker is not None:
            broker.stop()
        if not args.keep:  # the bulky part: broker log segments, the worker's data folder
            for bulky in (run_dir / "kafka" / "kraft-logs", run_dir / "worker" / "data"):
                shutil.rmtree(bulky, ignore_errors=True)
    h = results["holds"]
    c = results["catchup"]
    la = results["load_average_1m"]
    benchlib.figure(f"catch-up:  {done}; {results['processed']:,.0f}/{n:,} events processed")
    benchlib.figure(f"machine:   1-minute load average {la['min']}-{la['max']} (mean {la['mean']}) on "
                    f"{benchlib.host_info().get('cpus', '?')} CPUs; worker CPU {c.get('worker_cpu_pct_of_one_core', 'n/a')}% of one core")
    benchlib.figure(f"holds:     longest {h['max_seconds']:.3f} s; {h['count']:,} lag samples, sum {h['sum_seconds']} s")
    benchlib.figure(f"           in CPU time (kpi_event_loop_hold_cpu_seconds): longest {h['cpu_max_seconds'] or 0:.3f} s")
    prev = prev_cpu = 0
    benchlib.figure("           bucket        holds (wall)   holds (CPU time)")
    for le, cum in h["buckets"].items():
        cum_cpu = h["cpu_buckets"].get(le, 0)
        benchlib.figure(f"           <= {le:>6} s: {cum:>9,} (+{cum - prev:,})   {cum_cpu:>9,} (+{cum_cpu - prev_cpu:,})")
        prev, prev_cpu = cum, cum_cpu
    benchlib.figure("steps:     " + ", ".join(f"{k} {v:.3f} s" for k, v in h["step_max_seconds"].items()))
    benchlib.figure(f"warnings:  {len(results['warnings'])} holds over 0.25 s logged"
                    + "".join(f"\n           {re.sub(r'^.*?the event loop', 'the event loop', w)}" for w in results["warnings"][:8]))
    output.write_text(json.dumps(results, indent=2))
    benchlib.progress(f"results written to {output}")
    return 0


def _scrape(url: str) -> str:
    import urllib.request

    for _ in range(30):
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
                return resp.read().decode()
        except OSError:
            time.sleep(1)
    return ""


if __name__ == "__main__":
    sys.exit(main())
