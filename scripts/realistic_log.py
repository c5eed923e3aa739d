"""Turn `kpi simulate` output into a log whose customers look like a real contact center's (issue 19).

    python scripts/realistic_log.py --output real.jsonl [--unidentified 0.55] [--hot-contacts 20000]
                                    [--customers 20000] [--zipf 1.1] [--seed 19] sim-1.jsonl [sim-2.jsonl ...]

Real logs differ from the simulator in who calls: a large share of callers is not identified and
arrives under one placeholder customer id `0`, and identified customers are heavy-tailed. Each
contact (its `contact.created`) gets, from a seeded generator, the id `0` with probability
--unidentified, the one busy account `acct-hot` for --hot-contacts contacts in all (spread over the
log), else a customer drawn from a Zipf law of exponent --zipf over --customers ids; churn events
get a Zipf customer. Several inputs (simulations with different seeds over the same hours) are
merged into one denser center: each input's event, contact and agent ids get a prefix of their own
so they never meet. The same inputs and options give the same file. Progress and the counts go to
stderr; the output file is named at the end.
"""
from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import json
import random
import sys
from collections import Counter

PLACEHOLDER = "0"
HOT = "acct-hot"
PREFIXED = ("event_id", "contact_id", "agent_id", "repeat_of")


def zipf_table(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n under a Zipf law of exponent s."""
    return list(itertools.accumulate(1.0 / r ** s for r in range(1, n + 1)))


def read(path: str, prefix: str):
    """(ts, line number, event) of one input, ids prefixed, in file order (the simulator's time order)."""
    with open(path, "rb") as fh:
        for i, line in enumerate(fh):
            ev = json.loads(line)
            for f in PREFIXED:
                if isinstance(ev.get(f), str):
                    ev[f] = prefix + ev[f]
            yield ev["ts"], i, ev


def count_contacts(paths: list[str]) -> int:
    n = 0
    for path in paths:
        with open(path, "rb") as fh:
            n += sum(1 for line in fh if b'"contact.created"' in line)
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="`kpi simulate --output` files (JSON lines)")
    ap.add_argument("--output", required=True)
    ap.add_argument("--unidentified", type=float, default=0.55, help="share of contacts under the id 0")
    ap.add_argument("--hot-contacts", type=int, default=20_000, help="contacts of the one busy account")
    ap.add_argument("--customers", type=int, default=20_000, help="identified customers (Zipf ranks)")
    ap.add_argument("--zipf", type=float, default=1.1, help="exponent of the Zipf law of identified customers")
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args(argv)

    total = count_contacts(args.inputs)
    if total * (1 - args.unidentified) < args.hot_contacts:
        raise SystemExit(f"{total:,} contacts in the inputs: too few for {args.hot_contacts:,} of one account beside "
                         f"{args.unidentified:.0%} unidentified; simulate more hours or more seeds")
    hot_share = args.hot_contacts / total
    rng = random.Random(args.seed)
    table = zipf_table(args.customers, args.zipf)
    top = table[-1]

    def zipf_customer() -> str:
        return f"cust-{bisect.bisect_left(table, rng.random() * top) + 1}"

    per_customer: Counter = Counter()
    hot_left = args.hot_contacts
    seen = first = last = None
    streams = [read(path, f"s{i}-") for i, path in enumerate(args.inputs)]
    written = 0
    with open(args.output, "wb") as out:
        for ts, _, ev in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
            if ev["type"] == "contact.created":
                u = rng.random()
                if u < args.unidentified:
                    customer = PLACEHOLDER
                elif hot_left > 0 and u < args.unidentified + hot_share * 1.05:
                    customer, hot_left = HOT, hot_left - 1
                else:
                    customer = zipf_customer()
                ev["customer_id"] = customer
                per_customer[customer] += 1
            elif ev["type"] == "customer.churned":
                ev["customer_id"] = zipf_customer()
            out.write(json.dumps(ev, separators=(",", ":")).encode() + b"\n")
            written += 1
            first = first or ts
            last = ts
            if written % 100_000 == 0:
                print(f"{written:,} events ...", file=sys.stderr, flush=True)
    seen = sum(per_customer.values())
    print(f"{written:,} events, {seen:,} contacts from {first} to {last}: {per_customer[PLACEHOLDER]:,} "
          f"({per_customer[PLACEHOLDER] / seen:.1%}) under '{PLACEHOLDER}', {per_customer[HOT]:,} under '{HOT}', "
          f"{len(per_customer) - 2:,} other customers (busiest: {per_customer.most_common(3)[2:]})", file=sys.stderr)
    print(f"written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
