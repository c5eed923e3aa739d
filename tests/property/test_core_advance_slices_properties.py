"""QueueBook.advance(limit) and Publisher.advance(limit): a publication cut into slices of any size
gives the same records, in the same order, and leaves the books as one whole call does (the worker
publishes a day close ADVANCE_LIMIT records at a time; `kpi replay` in one call)."""
from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from processor.core.events import Event
from processor.core.pipeline import Pipeline
from processor.core.publish import Publisher
from tests.property.test_core_new_kinds_properties import (
    LATENESS, PROFILE, engine, ev, experience_events, experiences, journey_events, journeys, timelines)


def run(events: list[Event], batch: int, limit: int | None) -> tuple[list[dict], list, int]:
    """The worker's order: a batch of events through the books, then the records due (sliced with
    `limit`: called again while `advancing`). Returns the records, the books' state, the calls."""
    p = Pipeline(engine())
    q, j = p.queues, p.journeys
    out: list[dict] = []
    calls = 0
    for i in range(0, len(events), batch):
        for e in events[i:i + batch]:
            res = p.contacts.ingest(e)
            q.apply_all(res.deltas)
            q.apply_all(res.agent_deltas)
            for fact_id, route, fact in res.journey_deltas:
                j.apply(fact_id, fact, route)
            q.apply_all(j.take_deltas())
            q.observe(p.contacts.stream_ms)
            j.observe(p.contacts.stream_ms)
        while True:
            calls += 1
            out += q.advance(limit=limit)
            if not q.advancing:
                break
    state = [q.take_dirty(), dict(q.published), dict(q.experience.publisher.published),
             dict(q.agent_book.publisher.published), dict(q.resolution.resolution.published),
             dict(q.resolution.retention.published)]
    return out + q.flush_all(), state, calls


@PROFILE
@given(contacts=journeys(), more=experiences(), changes=timelines(), batch=st.integers(1, 60),
       limit=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_a_publication_cut_into_slices_equals_one_whole_call(contacts, more, changes, batch, limit, seed):
    events = journey_events(contacts) + experience_events(more)
    events += [ev(eid, "agent.state_changed", t, agent_id=a, state=s, queues=("Q1",)) for a, t, s, eid in changes]
    rng = random.Random(seed)
    events.sort(key=lambda e: e.ts_ms + rng.randrange(LATENESS))  # reordered within the lateness
    whole, whole_state, whole_calls = run(events, batch, None)
    sliced, sliced_state, sliced_calls = run(events, batch, limit)
    assert sliced == whole
    assert sliced_state == whole_state
    assert whole_calls == -(-len(events) // batch)     # unlimited: one call per batch
    assert sliced_calls >= whole_calls


@PROFILE
@given(ops=st.lists(st.tuples(st.sampled_from(["touch", "advance", "forget"]), st.integers(0, 15),
                              st.integers(0, 50), st.integers(0, 5)), max_size=80),
       limit=st.integers(1, 5))
def test_b_a_publisher_sliced_publishes_what_a_whole_one_does(ops, limit):
    """Touches, forgets and advances at random watermarks; each advance of the sliced one called
    until nothing is left. Contents change between advances, so corrections are published too."""
    def publishers():
        content: dict[tuple, int] = {}
        return content, Publisher(lambda key, version: {"key": key, "version": version, "n": content.get(key, 0)})

    c1, whole = publishers()
    c2, sliced = publishers()
    out1: list[dict] = []
    out2: list[dict] = []
    for op, k, t, n in ops:
        key = (f"k{k}",)
        if op == "touch":
            for c, p in ((c1, whole), (c2, sliced)):
                c[key] = c.get(key, 0) + n
                p.touch(key, t)
        elif op == "forget":
            whole.forget(key)
            sliced.forget(key)
        else:
            out1 += whole.advance(t)
            while True:
                recs = sliced.advance(t, limit)
                assert len(recs) <= limit and sliced.visited <= limit
                out2 += recs
                if not sliced.changed:
                    break
            assert whole.next_due == sliced.next_due
    assert out2 == out1
    assert sliced.take_dirty() == whole.take_dirty() and sliced.pending == whole.pending
    assert sliced.flush() == whole.flush()
