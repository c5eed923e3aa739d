"""Cost of the agent book's steps against the history it holds (issue 19 item 1, issue 25).

One hot agent holds N state changes within the retention (N = 100, 10,000, 100,000), beside A
other agents (one change each, most of them offline for days: the compact `bases`). For each N it
prints the mean cost of: an in-order change of the hot agent, a change one hour late in the
middle of its history, a leg, and one expiry pass (the lowest of --rounds runs); then the memory held per agent offline for days after the floor moved by one interval (per pass
and per due key). `--compare REV` runs the same on processor/core/agents.py of a git revision.

    python scripts/bench_agents.py [--agents 20000] [--rounds 3] [--compare 17ae57e]
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processor.core.settings import EngineSettings  # noqa: E402

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
T0 = 100 * DAY


def load(rev: str | None):
    if rev is None:
        from processor.core import agents
        return agents
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:processor/core/agents.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "processor" / "core" / "agents_old.py"
    path.parent.mkdir(parents=True)
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("processor.core.agents_old", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def one(mod, n: int, agents: int) -> dict[str, float]:
    book = mod.AgentBook(EngineSettings())
    now = T0 + 2 * HOUR
    for i in range(agents):  # others: offline for days (expired to one entry each before the measurement)
        book.apply(f"as|o{i}|e", ("ast", f"o{i}", T0 - 3 * DAY + i, "offline"))
    book.advance(T0 - 3 * DAY + HOUR)
    book.advance(T0)
    book.expire(T0)
    for i in range(0, agents, 10):  # a tenth of them back, available, in the last half hour
        book.apply(f"as|o{i}|f", ("ast", f"o{i}", now - 30 * MINUTE + i, "available"))
    step = (2 * HOUR - MINUTE) // n
    for k in range(n):  # the hot agent's history, all within the retention, the clock following it
        ts = T0 + MINUTE + k * step
        book.apply(f"as|hot|h{k}", ("ast", "hot", ts, ("available", "busy", "acw")[k % 3]))
        if k % 1000 == 0:
            book.advance(ts)
    book.advance(now)
    book.expire(now)
    book.advance(now)
    out = {}
    ops = 2000
    t = time.perf_counter()
    for k in range(ops):
        book.apply(f"as|hot|n{k}", ("ast", "hot", now + k, ("available", "busy")[k % 2]))
    out["in-order change µs"] = (time.perf_counter() - t) / ops * 1e6
    t = time.perf_counter()
    for k in range(ops):
        book.apply(f"as|hot|l{k}", ("ast", "hot", now - HOUR + k, "away"))
    out["1 h late change µs"] = (time.perf_counter() - t) / ops * 1e6
    t = time.perf_counter()
    for k in range(ops):
        book.apply(f"al|hot|{k}", ("aleg", "hot", now - k * 100, 300_000))
    out["leg µs"] = (time.perf_counter() - t) / ops * 1e6
    book.advance(now + ops)
    later = now + 15 * MINUTE
    book.advance(later)
    t = time.perf_counter()
    due = book.expire(later)
    out["expiry pass ms"] = (time.perf_counter() - t) * 1e3
    out["pass returned"] = due  # this tree: (agent, interval) keys visited; older revisions: facts dropped
    return out


def dormant_bytes(mod, n: int) -> float:
    """Bytes held per agent offline for days (tracemalloc; the id strings, made before, not counted)."""
    import tracemalloc

    ids = [(f"as|agent-{i:06d}|evt-{i:08d}", f"agent-{i:06d}") for i in range(n)]
    book = mod.AgentBook(EngineSettings())
    tracemalloc.start()
    for fid, agent in ids:
        book.apply(fid, ("ast", agent, T0 + int(fid[-3:]), "offline"))
    for t in (T0 + HOUR, T0 + 3 * DAY):
        book.advance(t)
        book.expire(t)
    book.dirty_facts.clear()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return held / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=20_000, help="other agents held (mostly offline for days)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per figure; the lowest is printed")
    ap.add_argument("--compare", metavar="REV", help="also run processor/core/agents.py of this git revision")
    args = ap.parse_args()
    runs = [("this tree", None)] + ([(args.compare, args.compare)] if args.compare else [])
    for label, rev in runs:
        mod = load(rev)
        print(f"agent book of {label}, {args.agents:,} other agents:", flush=True)
        for n in (100, 10_000, 100_000):
            rounds = [one(mod, n, args.agents) for _ in range(args.rounds)]  # a shared machine: the best round
            figures = {k: min(r[k] for r in rounds) for k in rounds[0]}
            print(f"  hot agent with {n:>7,} changes held: " + ", ".join(
                f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in figures.items()), flush=True)
        print(f"  memory per agent offline for days: {dormant_bytes(mod, 100_000):,.0f} bytes (100,000 agents)", flush=True)
    print("figures printed above (nothing written)", file=sys.stderr)


if __name__ == "__main__":
    main()
