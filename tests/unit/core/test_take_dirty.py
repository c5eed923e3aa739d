"""take_dirty(limit) in slices: the keys and values a worker persists are those of one whole call.

The worker serialises a batch's changed keys TAKE_LIMIT at a time (processor/worker/tables.py, issue 19: one
call for a 5,000-record batch, or the digests owed after a day close, held the loop for 0.15-0.35 s);
`kpi replay` and the tests take them whole. Here two identical pipelines run the same realistic log
(placeholder customer, a busy account, Zipf customers) in batches, with housekeeping and day
closes: after every batch one takes every book's dirty keys at once, the other in slices of a few
keys, and what they took must be equal, key by key.
"""
from __future__ import annotations

import json

import pytest

from processor.core.pipeline import Pipeline
from processor.decode import decode
from tests.coretools import engine
from tests.hotkeys import realistic_events

DAY_MS = 86_400_000


def _events():
    raw = realistic_events(600, 3 * DAY_MS, busy_contacts=150, agents=8)
    return [decode(json.dumps(e)) for e in raw]


def _take_all(p: Pipeline) -> dict:
    c = p.contacts
    contacts, agents = c.take_dirty()
    facts, published = p.queues.take_dirty()
    return {"contacts": contacts, "agents": agents, "profiles": c.take_dirty_profiles(),
            "customers": c.take_dirty_customers(), "agent_ids": c.take_dirty_agent_ids(),
            "facts": facts, "published": published, "journeys": p.journeys.take_dirty()}


def _take_sliced(p: Pipeline, limit: int) -> tuple[dict, int]:
    """As the worker does: call again until a call returns fewer than `limit` keys. Also returns the calls."""
    out: dict[str, dict] = {name: {} for name in ("contacts", "agents", "profiles", "customers", "agent_ids",
                                                  "facts", "published", "journeys")}
    calls = 0

    def drain(pairs) -> None:  # pairs() -> [(name, dict)] of one call
        nonlocal calls
        while True:
            calls += 1
            taken = pairs()
            for name, part in taken:
                assert not part.keys() & out[name].keys(), f"{name}: a key taken twice"
                out[name].update(part)
            if sum(len(part) for _, part in taken) < limit:
                return

    c, q, j = p.contacts, p.queues, p.journeys
    drain(lambda: list(zip(("contacts", "agents"), c.take_dirty(limit))))
    drain(lambda: [("profiles", c.take_dirty_profiles(limit))])
    drain(lambda: [("customers", c.take_dirty_customers(limit))])
    drain(lambda: [("agent_ids", c.take_dirty_agent_ids(limit))])
    drain(lambda: list(zip(("facts", "published"), q.take_dirty(limit))))
    drain(lambda: [("journeys", j.take_dirty(limit))])
    return out, calls


def _run(p: Pipeline, events, start: int, end: int) -> None:
    for e in events[start:end]:
        p.feed(e)


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_sliced_takes_equal_one_whole_take_after_every_batch(limit):
    events = _events()
    whole, sliced = Pipeline(engine()), Pipeline(engine())
    batch, calls, taken = 97, 0, 0
    for i in range(0, len(events), batch):
        _run(whole, events, i, i + batch)
        _run(sliced, events, i, i + batch)
        if i // batch % 7 == 6:  # housekeeping now and then: deletions and floor rows
            for p in (whole, sliced):
                p.contacts.expire()
                p.queues.expire()
                p.journeys.expire()
                p.queues.apply_all(p.journeys.take_deltas())
        expected = _take_all(whole)
        got, n = _take_sliced(sliced, limit)
        assert got == expected
        calls += n
        taken += sum(len(d) for d in expected.values())
    assert taken > 1000 and calls > taken // limit // 2  # the log changed many keys, taken in many slices
    assert _take_all(sliced) == _take_all(whole) == {name: {} for name in expected}  # nothing left behind


def test_floor_rows_come_with_the_call_that_takes_the_last_keys():
    events = _events()
    p = Pipeline(engine())
    _run(p, events, 0, len(events))
    p.queues.take_dirty()
    p.queues.expire()  # moves the floors and drops facts: deletions and floor rows are dirty
    first_facts, first_published = p.queues.take_dirty(1)
    assert len(first_facts) + len(first_published) == 1
    assert not any(k.endswith("|floor") for k in first_published)
    rest: dict = {}
    while True:
        facts, published = p.queues.take_dirty(1)
        rest.update(published)
        if len(facts) + len(published) < 1:
            break
    assert any(k.endswith("|floor") for k in rest)
