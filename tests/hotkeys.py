"""A deterministic contract event log that looks like a real contact center's customer keys
(issue 19): most callers not identified under one placeholder id, identified customers
heavy-tailed (Zipf), and one very busy account. Used by the streaming-equals-replay test and by
scripts/bench_hotkeys.py; `distinct=True` gives every contact a customer of its own (same events
otherwise), the baseline the benchmark compares with.

Every contact: created (voice or chat), queued, answered after a short wait (or abandoned), wrap-up,
mostly resolved, sometimes reopened, sometimes surveyed. Agents change state now and then, and a
few identified customers churn. Issues: a few common ones, many rare ones, and about a third none.
"""
from __future__ import annotations

import itertools
import json
import random
from datetime import datetime, timezone

PLACEHOLDER = "0"
QUEUES = ("sales", "support", "billing")
START_MS = int(datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp() * 1000)


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (k ** s) for k in range(1, n + 1)]


def realistic_events(contacts: int, span_ms: int, *, seed: int = 19, placeholder_share: float = 0.55,
                     busy_contacts: int = 0, busy_span_ms: int | None = None, customers: int | None = None,
                     distinct: bool = False, agents: int = 40, start_ms: int = START_MS) -> list[dict]:
    """`contacts` contacts created over `span_ms` from start_ms: a share under the placeholder id,
    `busy_contacts` of one account ("acct-busy", spread over busy_span_ms, default the whole span),
    the rest Zipf over `customers` identified ids (default contacts // 3). Events sorted by time."""
    rnd = random.Random(seed)
    customers = customers or max(1, contacts // 3)
    cum = list(itertools.accumulate(_zipf_weights(customers)))
    ids = [f"cust-{k}" for k in range(customers)]
    rare = [f"issue-{k}" for k in range(200)]
    events: list[dict] = []
    n = 0

    def emit(type_: str, ms: int, **fields) -> None:
        nonlocal n
        n += 1
        events.append({"event_id": f"h{seed}-{n}", "type": type_, "ts": _ts(ms), **fields})

    busy_at = set(rnd.sample(range(contacts), min(busy_contacts, contacts)))
    # placeholder_share is of all contacts: the share among those not of the busy account
    share = min(1.0, placeholder_share * contacts / max(1, contacts - len(busy_at)))
    busy_span = busy_span_ms or span_ms
    for i in range(contacts):
        cid = f"hc{seed}-{i}"
        if i in busy_at:
            customer = "acct-busy"
            created = start_ms + rnd.randrange(busy_span)
        else:
            customer = PLACEHOLDER if rnd.random() < share else rnd.choices(ids, cum_weights=cum)[0]
            created = start_ms + rnd.randrange(span_ms)
        if distinct:
            customer = f"solo-{i}"
        r = rnd.random()
        issue = None if r < 0.35 else rnd.choice(("card", "login", "payment", "address")) if r < 0.75 else rnd.choice(rare)
        channel = "voice" if rnd.random() < 0.8 else "chat"
        queue = rnd.choice(QUEUES)
        agent = f"ag-{rnd.randrange(agents)}"
        emit("contact.created", created, contact_id=cid, channel=channel, customer_id=customer,
             **({"issue": issue} if issue is not None else {}))
        emit("contact.queued", created + 500, contact_id=cid, queue_id=queue)
        wait = int(rnd.expovariate(1 / 25_000))
        if rnd.random() < 0.08:
            emit("contact.abandoned", created + 500 + wait, contact_id=cid, queue_id=queue)
            continue
        answered = created + 500 + wait
        talk = 60_000 + int(rnd.expovariate(1 / 180_000))
        emit("contact.answered", answered, contact_id=cid, queue_id=queue, agent_id=agent)
        emit("contact.wrapup_started", answered + talk, contact_id=cid, agent_id=agent)
        emit("contact.wrapup_ended", answered + talk + 20_000, contact_id=cid, agent_id=agent)
        if rnd.random() < 0.75:
            resolved = answered + talk + 30_000
            emit("contact.resolved", resolved, contact_id=cid)
            if rnd.random() < 0.05:
                emit("contact.reopened", resolved + rnd.randrange(3_600_000), contact_id=cid)
        if rnd.random() < 0.1:
            emit("survey.responded", answered + talk + 60_000, contact_id=cid, survey="csat",
                 score=rnd.randint(1, 5), scale_max=5)
    for k in range(agents):  # a state change per agent every couple of hours
        t = start_ms
        while t < start_ms + span_ms:
            emit("agent.state_changed", t, agent_id=f"ag-{k}", state=rnd.choice(("available", "busy", "acw", "away")),
                 queues=list(QUEUES))
            t += 2 * 3_600_000 + rnd.randrange(600_000)
    for k in rnd.sample(range(customers), min(customers, max(1, contacts // 500))):  # a few churns
        emit("customer.churned", start_ms + rnd.randrange(span_ms), customer_id=ids[k])
    events.sort(key=lambda e: (e["ts"], e["event_id"]))
    for e in rnd.sample(events, len(events) // 100):  # 1 % re-sent
        events.append(dict(e))
    events.sort(key=lambda e: e["ts"])
    return events


def write_jsonl(events: list[dict], path) -> None:
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
