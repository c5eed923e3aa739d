"""Throughput of the two adapters of `kpi ingest` from a file. Prints lines/s.

    python scripts/bench_ingest.py [lines]        (default 300,000 of each)

For each adapter it writes a synthetic, realistic input (a seeded mix of answered, abandoned and
timed-out calls with agents pausing; the CSV with a date column, times of day in Europe/Paris
and midnight crossings), then measures
  - the command: `kpi ingest ... --output FILE` as a user runs it (a new process, file to JSON
    lines, summary included), wall time / lines; the CSV adapter twice: with `--workers 1` (one
    process) and with its default (one worker process per core, at least 2; CPU then counts
    the workers' too);
  - the mapper alone (processor.ingest.asterisk map_line / csvlog map_row_lines, what the command
    calls, over the lines in memory, no output), best of 5 passes, the one least disturbed by other
    load on the host.
The load average is printed before and after: on a shared host the wall-clock figures depend on it.
Target (issue 23): >= 100,000 lines/s from a file.
"""
from __future__ import annotations

import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processor.ingest.asterisk import QueueLogMapper  # noqa: E402
from processor.ingest.csvlog import Mapping, RowMapper  # noqa: E402

MAPPING = ROOT / "deploy" / "config" / "csv-mapping.example.yaml"
T0 = 1795424400


def write_queue_log(path: Path, n_lines: int, seed: int = 7) -> int:
    rnd = random.Random(seed)
    agents = [f"PJSIP/{1000 + i}" for i in range(40)]
    queues = ["sales", "support", "billing"]
    out, t, call = [], T0, 0
    for a in agents:
        out.append(f"{t}|MANAGER|{rnd.choice(queues)}|{a}|ADDMEMBER|")
    while len(out) < n_lines:
        t += rnd.randint(0, 3)
        call += 1
        cid, q = f"{t}.{call}", rnd.choice(queues)
        out.append(f"{t}|{cid}|{q}|NONE|ENTERQUEUE||+3361{call % 10**7:07d}|{rnd.randint(1, 9)}")
        wait = rnd.randint(0, 90)
        r = rnd.random()
        if r < 0.7:
            agent = rnd.choice(agents)
            if rnd.random() < 0.2:
                out.append(f"{t + 5}|{cid}|{q}|{agent}|RINGNOANSWER|15000")
            talk = rnd.randint(30, 600)
            out.append(f"{t + wait}|{cid}|{q}|{agent}|CONNECT|{wait}|{cid}9|{rnd.randint(1, 9)}")
            out.append(f"{t + wait + talk}|{cid}|{q}|{agent}|COMPLETE{rnd.choice(['CALLER', 'AGENT'])}|{wait}|{talk}|1")
            if rnd.random() < 0.05:
                out.append(f"{t + wait + talk}|NONE|{q}|{agent}|PAUSE|Break")
                out.append(f"{t + wait + talk + 300}|NONE|{q}|{agent}|UNPAUSE|")
        elif r < 0.9:
            out.append(f"{t + wait}|{cid}|{q}|NONE|ABANDON|1|1|{wait}")
        else:
            out.append(f"{t + 120}|{cid}|{q}|NONE|EXITWITHTIMEOUT|1|1|120")
    path.write_text("\n".join(out[:n_lines]) + "\n")
    return n_lines


def write_csv(path: Path, n_rows: int, seed: int = 7) -> int:
    rnd = random.Random(seed)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["Call ID", "Date", "Arrival", "Queue", "Queue Start", "Queue Exit", "Disposition",
                    "Service Start", "Service End", "Agent", "Caller"])
        day, sec = 0, 8 * 3600

        def hms(s: int) -> str:
            s %= 86400
            return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

        for i in range(n_rows):
            sec += rnd.randint(0, 2)
            if sec >= 86400:
                day, sec = day + 1, sec - 86400
            date = f"{23 + day % 5:02d}/11/2026"
            qin = sec + rnd.randint(0, 20)
            qout = qin + rnd.randint(0, 90)
            r = rnd.random()
            if r < 0.7:
                svc_in, svc_out = qout - rnd.choice([0, 0, 0, 1, 2]), qout + rnd.randint(30, 600)
                row = [f"C{i}", date, hms(sec), "billing", hms(qin), hms(qout), "Answered", hms(svc_in),
                       hms(svc_out), f"A{rnd.randint(1, 40)}", f"+3360{i:07d}"]
            elif r < 0.9:
                row = [f"C{i}", date, hms(sec), "billing", hms(qin), hms(qout), "Abandoned", "0:00:00", "0:00:00",
                       "", f"+3360{i:07d}"]
            else:
                row = [f"C{i}", date, hms(sec), "", "0:00:00", "0:00:00", "IVR", "0:00:00", "0:00:00", "",
                       f"+3360{i:07d}"]
            w.writerow(row)
    return n_rows


def command(args: list[str], n: int, out: Path) -> tuple[float, float]:
    """(lines per wall second, lines per CPU second of the process) of one `kpi ingest` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "processor.cli", "ingest", *args, "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return n / elapsed, n / cpu


def best_of(passes: int, fn) -> tuple[float, float]:
    """Best (wall rate, CPU rate) of a few passes: the ones least disturbed by other load."""
    runs = [fn() for _ in range(passes)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def timed(n: int, body) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    body()
    return n / (time.perf_counter() - w0), n / (time.process_time() - c0)


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lines", nargs="?", type=int, default=300_000, help="lines of each adapter's input (default 300,000)")
    n = ap.parse_args().lines
    import yaml

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp = Path(tmp)
        qlog, calls = tmp / "queue_log", tmp / "calls.csv"
        write_queue_log(qlog, n)
        write_csv(calls, n)
        lines = qlog.read_text().splitlines()

        def asterisk_pass() -> tuple[float, float]:
            m = QueueLogMapper()
            return timed(len(lines), lambda: [m.map_line(line) for line in lines])

        with open(calls, newline="") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
        mapping = Mapping.from_dict(yaml.safe_load(MAPPING.read_text()))

        def csv_pass() -> tuple[float, float]:
            m = RowMapper(mapping, rows[0])
            return timed(len(rows) - 1, lambda: [m.map_row_lines(row) for row in rows[1:]])

        print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
        print("lines/s per wall-clock second (per CPU second of the process, the figure other load on the host "
              "disturbs least)")
        for name, args, fn in (("asterisk", ["asterisk", "--queue-log", str(qlog)], asterisk_pass),
                               ("csv", ["csv", "--mapping", str(MAPPING), str(calls)], csv_pass)):
            runs = [("", args)] if name == "asterisk" else \
                [(" --workers 1", [*args, "--workers", "1"]), (" (default workers)", args)]
            for label, argv in runs:
                wall, cpu = command(argv, n, tmp / f"{name}.jsonl")
                print(f"{name + label:<27} {n:>9,} lines  command, file to file: {wall:>9,.0f} ({cpu:>9,.0f} per CPU s)"
                      f"  load {os.getloadavg()[0]:.2f}")
            mw, mc = best_of(5, fn)
            print(f"{name:<27} mapper alone, best of 5: {mw:>9,.0f} ({mc:>9,.0f} per CPU s)")
        print(f"load average {os.getloadavg()[0]:.2f} (1 min)")
        print("target: >= 100,000 lines/s from a file (issue 23)")


if __name__ == "__main__":
    main()
