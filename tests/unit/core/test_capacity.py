"""Capacity model and cost per contact (processor/core/capacity.py); its gauges:
tests/unit/metrics/test_outcomes.py.

Queue Q1: agent-hour cost 30, availability 0.9, occupancy target 0.8. At 11:00:00 the rolling
60-minute window is the minute buckets 10:01 ... 11:00, i.e. [10:01:00, 11:00:00].
"""
from __future__ import annotations

import pytest

from processor.core.capacity import capacity_view, staffed_ms
from processor.core.settings import QueueSettings
from tests.coretools import Contact, agent_state, at, by_time, engine, run

SETTINGS = engine(queues={"Q1": QueueSettings(agent_hour_cost=30, availability=0.9, occupancy_target=0.8)})


def scenario():
    agents = [
        agent_state("a1", "available", "10:00:00"),                  # capacity not given: 1
        agent_state("a2", "busy", "10:00:00", capacity=3),           # a chat agent, 3 at a time
        agent_state("a3", "offline", "10:00:00"),                    # not staffed
        agent_state("a4", "away", "10:30:00"),                       # staffed (away is not offline)
    ]
    legs = [
        # handle 180 + 60 = 240 s, ends 10:14
        Contact("x1", created="10:09:50").queued("Q1", "10:09:50").answered("Q1", "10:10:00").wrapup("10:13:00", "10:14:00"),
        # handle 300 + 60 = 360 s, ends 10:26
        Contact("x2", created="10:19:50").queued("Q1", "10:19:50").answered("Q1", "10:20:00").wrapup("10:25:00", "10:26:00"),
    ]
    return sorted(agents + by_time(*legs), key=lambda e: e.ts_ms)


def test_staffed_ms():
    h = [(at("10:00:00"), "available"), (at("10:20:00"), "offline"), (at("10:40:00"), "busy")]
    # [10:10, 10:50): available 10:10-10:20 (10 min) + busy 10:40-10:50 (10 min)
    assert staffed_ms(h, at("10:10:00"), at("10:50:00")) == 20 * 60_000


def test_capacity_model_and_cost_per_contact():
    r = run(scenario(), SETTINGS, flush=False)
    (view,) = capacity_view(r.pipeline.queues, at("11:00:00"))
    assert (view["queue_id"], view["staffed_agents"], view["slots"]) == ("Q1", 3, 5)   # a1 + a2 (x3) + a4
    assert view["aht_seconds"] == 300.0                                             # (240 + 360) / 2
    # 5 slots x 3600 / 300 s x 0.9 x 0.8 = 43.2 contacts per hour
    assert view["expected_contacts_per_hour"] == pytest.approx(43.2)
    assert view["actual_contacts_per_hour"] == 2
    # staffed in [10:01, 11:00]: a1 59 min + a2 59 min + a4 30 min = 148 min; 30 x 148/60 h / 2 contacts = 37
    assert view["staffed_agent_hours"] == pytest.approx(148 / 60)
    assert view["cost_per_contact"] == pytest.approx(37.0)


def test_no_aht_no_expected_figure_and_no_cost_without_a_price():
    r = run([agent_state("a1", "available", "10:00:00")], engine(), flush=False)
    (view,) = capacity_view(r.pipeline.queues, at("10:30:00"))
    assert view["expected_contacts_per_hour"] is None and view["cost_per_contact"] is None
    assert view["actual_contacts_per_hour"] == 0


def _staffed_by_definition(history, since, until):
    """Every presence entry's overlap with [since, until), offline excluded: the definition, entry by entry."""
    total = 0
    for i, (start, state) in enumerate(history):
        end = history[i + 1][0] if i + 1 < len(history) else until
        if state != "offline":
            total += max(0, min(end, until) - max(start, since))
    return total


def test_staffed_time_starts_at_the_state_held_at_the_window_start_and_equals_the_definition():
    from hypothesis import given
    from hypothesis import strategies as st

    from processor.core.capacity import staffed_ms

    @given(st.lists(st.tuples(st.integers(0, 100), st.sampled_from(["offline", "available", "busy"])),
                    max_size=10, unique_by=lambda e: e[0]),
           st.integers(-10, 110), st.integers(0, 130))
    def check(entries, since, span):
        history = sorted(entries)
        assert staffed_ms(history, since, since + span) == _staffed_by_definition(history, since, since + span)

    check()
