"""Throughput of processor.decode.decode on typical ~200-byte events, one core. Prints events/s.

    python scripts/bench_decode.py [seconds]
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.decode import decode  # noqa: E402

SAMPLES = [
    {"event_id": "8f14e45f-ceea-467f-a0e6-7c6e1e2c0b11", "type": "contact.answered",
     "ts": "2026-11-23T09:00:05.120Z", "contact_id": "c-5d41402abc4b2a76b9719d911017c592",
     "queue_id": "billing-fr", "agent_id": "agent-00417"},
    {"event_id": "8f14e45f-ceea-467f-a0e6-7c6e1e2c0b12", "type": "contact.created",
     "ts": "2026-11-23T09:00:00.000Z", "contact_id": "c-5d41402abc4b2a76b9719d911017c592",
     "channel": "voice", "customer_id": "cust-000123456", "issue": "billing-7781"},
    {"event_id": "8f14e45f-ceea-467f-a0e6-7c6e1e2c0b13", "type": "agent.state_changed",
     "ts": "2026-11-23T09:00:01.500+01:00", "agent_id": "agent-00417", "state": "available",
     "queues": ["billing-fr", "billing-en"], "capacity": 1},
]


def run(payload: bytes, seconds: float) -> tuple[float, float]:
    """(best batch rate, overall rate). The best batch is the least disturbed by other load on the host."""
    decode(payload)  # fail fast if the sample is invalid
    n, batch, best = 0, 20_000, 0.0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            decode(payload)
        t1 = time.perf_counter()
        best = max(best, batch / (t1 - t0))
        n += batch
        if t1 - start >= seconds:
            return best, n / (t1 - start)


def main() -> None:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", nargs="?", type=float, default=2.0, help="seconds each measurement runs (default 2)")
    seconds = ap.parse_args().seconds
    bests, overalls = [], []
    print(f"{'type':<22} {'size':>10}  {'best batch':>12}  {'overall':>12}")
    for sample in SAMPLES:
        payload = json.dumps(sample, separators=(",", ":")).encode()
        best, overall = run(payload, seconds)
        bests.append(best)
        overalls.append(overall)
        print(f"{sample['type']:<22} {len(payload):4d} bytes  {best:>12,.0f}  {overall:>12,.0f}  events/s")
    print(f"{'mean':<22} {'':10}  {sum(bests) / len(bests):>12,.0f}  {sum(overalls) / len(overalls):>12,.0f}  events/s")


if __name__ == "__main__":
    main()
