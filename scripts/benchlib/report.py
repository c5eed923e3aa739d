"""What a benchmark prints and reads of its machine: progress on stderr (seconds since start), figures
on stdout, percentiles, /proc figures of a process, the host, and the targets the figures are held to."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from processor.core import describe as describe_core

from . import REPO


TARGETS = {
    "worker_events_per_s": 10_000,       # >= per worker, end to end
    "latency_p99_s": 1.0,                # <= at 2,000 events/s offered
    "soak_rss_growth_pct": 10.0,         # <= over a 10-minute soak
    "replay_events_per_s": 50_000,       # >=
    "replay_ratio_to_distinct": 0.6,     # >= realistic log / the same log with a distinct customer per contact
    "loop_hold_s": 0.25,                 # <= the longest event-loop hold (kpi_event_loop_hold_max_seconds)
    "busy_account_contacts": 20_000,     # issue 19's realistic log: one account with this many in the window
    "placeholder_share": 0.5,            # ... and at least this share of contacts under the placeholder id
}


_T0 = time.monotonic()


_TTY = sys.stderr.isatty()


def progress(msg: str, end: str = "\n") -> None:
    """A progress line on stderr, stamped with the seconds since the script started.

    end="" marks a line that the next one overwrites on a terminal (one line per call otherwise).
    """
    if end == "" and not _TTY:
        end = "\n"
    prefix = "\r" if end == "" else ""
    print(f"{prefix}[{time.monotonic() - _T0:7.1f}s] {msg}", end=end, file=sys.stderr, flush=True)


def progress_done() -> None:
    """End a run of overwritten progress lines."""
    if _TTY:
        print(file=sys.stderr, flush=True)


def figure(msg: str) -> None:
    """A result line on stdout."""
    print(msg, flush=True)


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} events/s"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def labels_of(key: str) -> dict[str, str]:
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', key))


def proc_status(pid: int | None) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a live process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    if not pid:
        return out
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def host_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cpus": os.cpu_count(), "cpu_model": cpu, "loadavg_at_start": os.getloadavg(), "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git("rev-parse", "--short", "HEAD"),
            "git_dirty_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
            "core": describe_core()}  # the workers this benchmark starts inherit its environment
