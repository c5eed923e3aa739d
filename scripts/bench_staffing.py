"""Cost of the live Erlang staffing figures a /metrics scrape computes (docs/staffing.md). Prints ms.

For queues of 20 to 1,000 agents at 90 % occupancy (AHT 300 s, patience 120 s, T 20 s, target 0.8):
the first computation of a queue's figures (required agents by Erlang C and Erlang A, and the SL and
ASA of the agents staffed now), and a repeat with the same inputs (remembered, as between two
scrapes within a minute). Best of several rounds: the least disturbed by other load on the host.

    python scripts/bench_staffing.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.core import describe  # noqa: E402
from processor.core.erlang import figures, required_servers  # noqa: E402
from processor.core.settings import QueueSettings  # noqa: E402
from processor.core.staffing import staffing_figures  # noqa: E402

AHT, PATIENCE, ROUNDS = 300.0, 120.0, 7


def once(agents: int, shift: float) -> float:
    """Seconds for one queue's figures; `shift` makes the inputs new (nothing remembered)."""
    inputs = {"arrival_rate": agents * 0.9 / AHT + shift, "aht_seconds": AHT, "patience_seconds": PATIENCE}
    members = {f"a{i}": "available" for i in range(agents)}
    started = time.perf_counter()
    staffing_figures(inputs, QueueSettings(), members, {})
    return time.perf_counter() - started


def main() -> None:
    import argparse
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(describe())
    print(f"{'agents':>7} {'first (ms)':>11} {'repeat (ms)':>12}")
    for agents in (20, 100, 300, 1000):
        first = min(once(agents, 1e-9 * r) for r in range(1, ROUNDS + 1))
        repeat = min(once(agents, 1e-9) for _ in range(ROUNDS))
        print(f"{agents:>7} {first * 1000:>11.2f} {repeat * 1000:>12.3f}")
    print(f"cache: required_servers {required_servers.cache_info()}, figures {figures.cache_info()}")


if __name__ == "__main__":
    main()
