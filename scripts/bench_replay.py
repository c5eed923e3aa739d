"""`kpi replay` on the realistic and uniform profiles, with the CPU time of each of its processes (a benchmark).

    python scripts/bench_replay.py [--events 500000] [--seed 7] [--rounds 2] [--folder DIR]
    python scripts/bench_replay.py --input a.jsonl --input b.jsonl [--rounds 2]

Wall-clock events/s on a shared machine mostly measure the other jobs: this prints, beside the wall
figure and the load average, the CPU seconds of the parent (stage two, journeys, output) and of the
stage-one child (decoding, ContactBook), and events per CPU-second of the busier one, which is what
bounds the wall figure on two free cores. The logs are made as scripts/bench.py makes them (same N,
seed and customer profiles: realistic, uniform, and the realistic log with a distinct customer per
contact) unless --input is given; the runs alternate between the logs, round after round, so a
change of load hits every log alike. Progress goes to stderr; figures to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def make_logs(n: int, seed: int, folder: Path) -> list[Path]:
    """The realistic, uniform and distinct-customer logs of bench.py's replay step (reused when present)."""
    import benchlib

    paths = [folder / f"{name}-{n}-seed{seed}.jsonl" for name in ("realistic", "uniform", "distinct")]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    for profile, path in (("realistic", paths[0]), ("uniform", paths[1])):
        events, _ = benchlib.generate_events(n, seed, benchlib.bench_model(profile))
        with open(path, "wb") as f:
            f.writelines(benchlib.dumps(ev) + b"\n" for ev in events)
        if profile == "realistic":
            print(benchlib.profile_text(benchlib.log_profile(events)), file=sys.stderr)
            with open(paths[2], "wb") as f:
                f.writelines(benchlib.dumps(ev) + b"\n" for ev in benchlib.distinct_customers(events))
    print(f"logs written to {folder}", file=sys.stderr)
    return paths


def one(input_path: str, output_path: str) -> None:
    """Child mode: one `kpi replay` (the command's own code path, two processes when two cores), figures as JSON."""
    from processor.core.settings import EngineSettings
    from processor.replay import run_replay

    started = time.monotonic()
    run_replay(Path(input_path), Path(output_path), EngineSettings(), None, True, None)
    wall = time.monotonic() - started
    me, child = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"wall_s": wall, "parent_cpu_s": me.ru_utime + me.ru_stime,
                      "child_cpu_s": child.ru_utime + child.ru_stime}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/kpi-bench-replay"))
    parser.add_argument("--input", action="append", help="replay these logs instead of making them")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one)
        return 0
    paths = [Path(p) for p in args.input] if args.input else make_logs(args.events, args.seed, args.folder)
    counts = {p: sum(1 for line in open(p, "rb") if line.strip()) for p in paths}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    rows = []
    for r in range(args.rounds):
        for p in paths:
            out = p.with_suffix(".rollups")
            print(f"round {r + 1}: kpi replay on {p} ...", file=sys.stderr)
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, __file__, "--one", str(p), str(out)], env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            fig = json.loads(proc.stdout.strip().splitlines()[-1])
            core = next((ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("KPI core")), "?")
            n = counts[p]
            busier = max(fig["parent_cpu_s"], fig["child_cpu_s"])
            rows.append((p.name, r + 1, n, fig, load, os.getloadavg()[0], core, n / busier))
            print(f"{p.name} round {r + 1}: {n:,} events, wall {fig['wall_s']:.2f} s = {n / fig['wall_s']:,.0f} events/s; "
                  f"CPU parent {fig['parent_cpu_s']:.2f} s, stage-one child {fig['child_cpu_s']:.2f} s "
                  f"({n / (fig['parent_cpu_s'] + fig['child_cpu_s']):,.0f} events per CPU-second of both, "
                  f"{n / busier:,.0f} per CPU-second of the busier); load {load:.1f} -> {os.getloadavg()[0]:.1f}; {core}",
                  flush=True)
    print("best per log (events per CPU-second of the busier process):")
    for p in paths:
        best = max(row[7] for row in rows if row[0] == p.name)
        fastest = max(row[2] / row[3]["wall_s"] for row in rows if row[0] == p.name)
        print(f"  {p.name}: {best:,.0f} per CPU-second of the busier process, fastest wall {fastest:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
