"""The worker's memory beyond its peak RSS: what was alive at the peak (--memory-probe) and how far
housekeeping fell behind (the worker log), the two figures that explained issue 19's 18 % growth
(docs/performance.md, "the worker's peak RSS after the split")."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from . import REPO

PROBE_DIR = Path(__file__).resolve().parent / "memprobe"
_OVERLAP = re.compile(r"Timer \S*housekeeping\S* is overlapping \(interval=([\d.]+) runtime=([\d.]+)\)")


def probe_env(out_path: Path) -> dict[str, str]:
    """A worker's environment additions for the probe (memprobe/sitecustomize.py): the probe first on its
    path, then this repository (the tree under test), then whatever PYTHONPATH was."""
    parts = [str(PROBE_DIR), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(parts), "BENCH_MEMPROBE_OUT": str(out_path)}


def probe_summary(path: Path) -> dict:
    """The probe's samples: the one at the peak RSS, and the most Python blocks seen (the state's high point)."""
    try:
        samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return {}
    samples = [s for s in samples if "vmrss_kb" in s]
    if not samples:
        return {}
    peak = max(samples, key=lambda s: s["vmrss_kb"])
    most = max(samples, key=lambda s: s["py_blocks"])
    return {"samples": len(samples), "path": str(path), "at_peak_rss": peak, "most_py_blocks": most,
            "last": samples[-1]}


def housekeeping_overruns(log_path: Path) -> dict:
    """Housekeeping passes that outlasted their timer's interval (Faust logs "Timer ... is overlapping"
    with the pass's runtime); the expired state of a pass that lasts is freed only as it goes."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return {}
    runtimes = [float(m.group(2)) for m in _OVERLAP.finditer(text)]
    return {"overruns": len(runtimes), "longest_seconds": max(runtimes, default=None),
            "interval_seconds": float(m.group(1)) if (m := _OVERLAP.search(text)) else None}


def memory_text(probe: dict, overruns: dict) -> str:
    """One line for the figures."""
    parts = []
    if probe:
        p, m = probe["at_peak_rss"], probe["most_py_blocks"]
        parts.append(f"at the peak ({p['t']:.0f} s after start) {p['py_blocks'] / 1e6:.2f} M Python blocks"
                     + (f", malloc {p['malloc_inuse_kb'] / 1024:,.0f} MiB in use + {p['malloc_free_kb'] / 1024:,.0f} MiB free"
                        if "malloc_inuse_kb" in p else "")
                     + f"; most blocks {m['py_blocks'] / 1e6:.2f} M at {m['t']:.0f} s, {probe['last']['py_blocks'] / 1e6:.2f} M at the end")
    if overruns:
        interval = f"{overruns['interval_seconds']:g} s" if overruns["interval_seconds"] else "timer's"
        parts.append(f"housekeeping passes over their {interval} interval: {overruns['overruns']}"
                     + (f", longest {overruns['longest_seconds']:.1f} s" if overruns["longest_seconds"] else ""))
    return "; ".join(parts) or "no probe samples, no housekeeping overrun"
