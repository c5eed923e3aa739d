"""How long the first slice of a QueueBook expiry pass takes when the book holds many facts and few are due.

Run it with PYTHONPATH pointing at the tree to measure (the pure-Python core unless it is compiled):
    PYTHONPATH=. python scripts/bench_queue_expiry.py --facts 200000
"""
from __future__ import annotations

import argparse
import time

from processor.core.queues import QueueBook
from processor.core.settings import EngineSettings
from processor.core.events import parse_ts_ms

DAY, HOUR = 86_400_000, 3_600_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facts", type=int, default=200_000, help="recent legs in the book (not due)")
    ap.add_argument("--due", type=int, default=1, help="old legs in the book (due)")
    args = ap.parse_args()
    start = parse_ts_ms("2026-11-23T08:00:00Z")
    later = start + 3 * DAY
    book = QueueBook(EngineSettings(interval_minutes=15, lateness_ms=30_000, retention_ms=2 * HOUR))
    for i in range(args.due):
        book.apply(f"leg|old|{i}", ("leg", "Q1", "voice", start + i, 60_000, 0, 0))
    for i in range(args.facts):
        book.apply(f"leg|{i}", ("leg", "Q1", "voice", later - i % HOUR, 60_000, 0, 0))
    book.observe(later)
    book.advance()
    t = time.perf_counter()
    visited = book.expire(limit=500)
    first = time.perf_counter() - t
    print(f"{args.facts + args.due:,} facts, {args.due:,} due: first expire(limit=500) slice "
          f"{first * 1000:.1f} ms, visited {visited}")


if __name__ == "__main__":
    main()
