"""The events a benchmark feeds: the seeded simulation's history, the live pool re-stamped with fresh
ids, the contract's message key and bytes, and `kpi replay` timed on a log (no broker)."""
from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from pathlib import Path

from processor import jsonline
from processor.simulator import DEFAULT_MODEL, Model, Simulation, sorted_events

from . import REPO
from .report import progress


SIM_EVENTS_PER_HOUR = 3400  # about what the default simulated contact center emits


def event_key(ev: dict) -> bytes:
    """The message key the contract prescribes: contact_id, else agent_id, else customer_id."""
    return (ev.get("contact_id") or ev.get("agent_id") or ev.get("customer_id") or "").encode()


def dumps(ev: dict) -> bytes:
    return jsonline.dumps(ev).encode()


def simulate(seed: int, start: float, hours: float, model: Model = DEFAULT_MODEL) -> list[dict]:
    return sorted_events(Simulation(model, seed=seed, start=start, duration_seconds=hours * 3600))


def generate_events(n: int, seed: int, model: Model = DEFAULT_MODEL) -> tuple[list[dict], float]:
    """The first n events, in event-time order, of a seeded simulation that starts at a UTC midnight
    (so a given N and seed give the same day shape on every run) and ends before today."""
    hours = n / SIM_EVENTS_PER_HOUR * 1.15 + 1
    while True:
        days_back = int(hours // 24) + 2  # the drain after the end stays well before today
        start = float((int(time.time()) // 86400 - days_back) * 86400)
        progress(f"simulating {hours:.1f} h of the contact center (seed {seed}) for {n:,} events ...")
        events = simulate(seed, start, hours, model)
        if len(events) >= n:
            return events[:n], hours
        hours *= max(1.2, n / max(1, len(events)) * 1.15)


LIVE_POOL_MAX = 200_000  # events simulated for the live phases; reused with fresh ids when more are needed


ID_FIELDS = ("event_id", "contact_id", "agent_id", "customer_id", "repeat_of")


def live_pool(seed: int, needed: int, model: Model = DEFAULT_MODEL) -> list[dict]:
    """A whole simulated center (drained, every contact finished) of about min(needed, LIVE_POOL_MAX) events."""
    target = min(needed, LIVE_POOL_MAX)
    hours = max(1.0, target / SIM_EVENTS_PER_HOUR * 1.15)
    start = float((int(time.time()) // 86400 - int(hours // 24) - 2) * 86400)
    progress(f"simulating {hours:.1f} h of the contact center (seed {seed}) for the live feed ...")
    while True:
        pool = simulate(seed, start, hours, model)
        if len(pool) >= target:
            return pool
        hours *= max(1.2, target / max(1, len(pool)) * 1.15)


def pass_id_fields(model: Model) -> tuple[str, ...]:
    """The fields a repeated pass of a pool renames: with realistic customers, not `customer_id` (they
    are one customer base, the placeholder and the busy account included, and stay hot pass after pass)."""
    return tuple(f for f in ID_FIELDS if f != "customer_id" or not model.customers.realistic)


def live_events(pool: list[dict], prefix: str, fields: tuple[str, ...] = ID_FIELDS):
    """The pool's events in event-time order, again and again, each pass with its own id prefix so no
    contact, agent or event of one pass (or of the backlog) meets another. The caller sets `ts`."""
    for n in itertools.count():
        p = f"{prefix}{n}-"
        for ev in pool:
            ev = dict(ev)
            for f in fields:
                if isinstance(ev.get(f), str):
                    ev[f] = p + ev[f]
            yield ev


def run_replay(events_path: Path, out_path: Path) -> dict:
    """`kpi replay` on the event file in a child process; its own events/s line is parsed."""
    cmd = [sys.executable, "-m", "processor.cli", "replay", "--input", str(events_path), "--output", str(out_path)]
    progress(f"kpi replay on {events_path} ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"kpi replay failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = re.search(r"replayed ([\d,]+) events in ([\d.]+) s \(([\d,]+) events/s\): ([\d,]+) rollup records", proc.stderr)
    if not m:
        raise RuntimeError(f"cannot read kpi replay's output:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("replayed "))
    return {"command": " ".join(cmd), "events": int(m.group(1).replace(",", "")), "seconds": float(m.group(2)),
            "events_per_s": float(m.group(3).replace(",", "")), "rollup_records": int(m.group(4).replace(",", "")),
            "process_wall_seconds": round(wall, 3), "reported_line": line}
