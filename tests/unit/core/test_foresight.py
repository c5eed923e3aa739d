"""core/foresight.py and core/staffing.py on hand-made contacts: the exact edges of "at risk" and
"breached", the projected service-level bounds, the Erlang inputs and the queue_interval staffing
fields, and the same figures whatever the arrival order and duplicates (replay = streaming)."""
from __future__ import annotations

import math
import random

from processor.core.capacity import staffing_view
from processor.core.erlang import erlang_a, erlang_c, required_servers
from processor.core.foresight import at_risk_counts, foresight_view, projected_service_level
from processor.core.settings import QueueSettings
from processor.core.staffing import erlang_inputs, interval_staffing, staffing_figures
from processor.core.stats import SegmentStats
from tests.coretools import Contact, agent_state, at, by_time, engine, run, tick


def test_at_risk_edges_in_integer_milliseconds():
    t, r = 20_000, 10_000
    now = 1_000_000
    waits = {"T - R (not yet)": 10_000, "just past T - R": 10_001, "T exactly": 20_000, "just past T": 20_001, "0": 0}
    starts = {k: now - w for k, w in waits.items()}
    assert at_risk_counts([starts["T - R (not yet)"]], now, t, r) == (0, 0)
    assert at_risk_counts([starts["just past T - R"]], now, t, r) == (1, 0)
    assert at_risk_counts([starts["T exactly"]], now, t, r) == (1, 0)  # answered now it is still within T (wait <= T)
    assert at_risk_counts([starts["just past T"]], now, t, r) == (0, 1)
    assert at_risk_counts(starts.values(), now, t, r) == (2, 1)
    assert at_risk_counts(starts.values(), now, t, 0) == (0, 1)  # at_risk_seconds 0: the window is empty


def floor_scenario() -> list:
    """Q1 voice, T = 20 s, S = 5 s, at risk 10 s; the stream clock ends at 10:20:00 (interval 10:15-10:30).

    Ended in 10:15-10:30: 3 answered within T, 1 answered after T, 1 short abandon.
    Ended in 10:00-10:15: 1 answered within T (counts for today only).
    Waiting at 10:20:00: waits 10 s (not at risk), 15 s (at risk), 20 s (at risk, = T), 25 s (breached).
    """
    cs = [
        Contact("early", created="10:05:00").queued("Q1", "10:05:00").answered("Q1", "10:05:05"),
        Contact("a1", created="10:16:00").queued("Q1", "10:16:00").answered("Q1", "10:16:10"),
        Contact("a2", created="10:16:00").queued("Q1", "10:16:00").answered("Q1", "10:16:20"),
        Contact("a3", created="10:17:00").queued("Q1", "10:17:00").answered("Q1", "10:17:01"),
        Contact("late", created="10:17:00").queued("Q1", "10:17:00").answered("Q1", "10:17:21"),
        Contact("short", created="10:18:00").queued("Q1", "10:18:00").abandoned("Q1", "10:18:02"),
        Contact("w10", created="10:19:50").queued("Q1", "10:19:50"),
        Contact("w15", created="10:19:45").queued("Q1", "10:19:45"),
        Contact("w20", created="10:19:40").queued("Q1", "10:19:40"),
        Contact("w25", created="10:19:35").queued("Q1", "10:19:35"),
    ]
    return by_time(*cs) + [tick("10:20:00")]


SETTINGS = engine(threshold_seconds=20, short_abandon_seconds=5, at_risk_seconds=10)


def test_at_risk_breached_and_projected_bounds_by_hand():
    r = run(floor_scenario(), SETTINGS, flush=False)
    book = r.pipeline.queues
    assert book.latest_ms == at("10:20:00")
    [view] = foresight_view(book, book.latest_ms)
    assert (view["waiting"], view["at_risk"], view["breached_waiting"]) == (4, 2, 1)
    p = view["projected_service_level"]
    # interval: answered 4 (+4 waiting), within 3, short abandons 1: offered - short = 5 + 4 - 1 = 8
    # abandons_positive: the short abandon (2 s) is an abandon within T: (3 + 1) / (8 + 1)
    assert p["interval"]["worst"] == {"answered_over_offered": 3 / 8, "answered_over_answered": 3 / 8,
                                      "abandons_positive": 4 / 9}
    assert p["interval"]["best"] == {"answered_over_offered": 6 / 8, "answered_over_answered": 6 / 8,
                                     "abandons_positive": 7 / 9}
    # today adds the 10:05 contact, answered within T
    assert p["today"]["worst"]["answered_over_offered"] == 4 / 9
    assert p["today"]["best"]["answered_over_offered"] == 7 / 9
    # one millisecond later the 20 s contact is breached and the 10 s one not yet at risk... until it passes 10 s
    [later] = foresight_view(book, at("10:20:00.001"))
    assert (later["at_risk"], later["breached_waiting"]) == (2, 2)
    assert later["projected_service_level"]["interval"]["best"]["answered_over_offered"] == 5 / 8


def test_projected_bounds_with_nothing_ended_and_nobody_waiting():
    empty = projected_service_level(SegmentStats(), 0, 0)
    assert empty["worst"]["answered_over_offered"] is None and empty["best"]["answered_over_answered"] is None
    two = projected_service_level(SegmentStats(), 2, 1)
    assert two["worst"]["answered_over_offered"] == 0.0 and two["best"]["answered_over_offered"] == 0.5


def shuffled_within_lateness(events: list, seed: int) -> list:
    """Arrival order differs from event time by up to a few seconds (well within the 30 s lateness), with duplicates."""
    rnd = random.Random(seed)
    keyed = sorted(events, key=lambda e: e.ts_ms + rnd.uniform(0, 5_000))
    dupes = rnd.sample(keyed, k=len(keyed) // 3)
    out = keyed + dupes
    out.sort(key=lambda e: (e.ts_ms + rnd.uniform(0, 5_000)))
    return [e for e in out if e is not None]


def test_same_figures_whatever_the_arrival_order_and_duplicates():
    events = floor_scenario() + [agent_state("ag1", "available", "10:00:00"), agent_state("ag2", "busy", "10:00:00"),
                                 tick("10:20:00")]
    events.sort(key=lambda e: e.ts_ms)
    def figures(r):
        book = r.pipeline.queues
        # a queued seen before its contact.created leaves an empty (queue, "unknown") key in the book until
        # housekeeping: a row with nothing in it, not a figure
        ahead = [v for v in foresight_view(book, book.latest_ms) if v["channel"] != "unknown" or v["waiting"]]
        return ahead, staffing_view(book, book.latest_ms)

    want = figures(run(events, SETTINGS, flush=False))
    assert want[0][0]["at_risk"] == 2 and want[1][0]["staffed_agents"] == 2
    for seed in range(5):
        assert figures(run(shuffled_within_lateness(events, seed), SETTINGS, flush=False)) == want, seed


# ----------------------------------------------------------------------------------------- staffing

def stats(answered: int, abandoned: int, wait_ms: int, handled: int, talk_ms: int) -> SegmentStats:
    s = SegmentStats()
    s.answered, s.abandoned, s.wait_ms, s.handled, s.talk_ms = answered, abandoned, wait_ms, handled, talk_ms
    return s


def test_erlang_inputs_and_no_figure_without_them():
    s = stats(answered=90, abandoned=10, wait_ms=1_200_000, handled=90, talk_ms=90 * 180_000)
    inputs = erlang_inputs(s, 1800)
    assert inputs == {"arrival_rate": 100 / 1800, "aht_seconds": 180.0, "patience_seconds": 120.0}
    assert erlang_inputs(stats(5, 0, 0, 0, 0), 1800) is None  # no leg ended: no AHT, no figure
    assert erlang_inputs(stats(5, 0, 0, 5, 5000), 1800)["patience_seconds"] is None  # no abandon: infinite patience
    q = QueueSettings()
    fig = staffing_figures(None, q, {"a": "available"}, {})
    assert fig["staffed_agents"] == 1
    assert all(v is None for m in fig["models"].values() for v in m.values())


def test_concurrency_and_shrinkage_turn_servers_into_agents():
    q = QueueSettings(threshold_seconds=30, service_level_target=0.8, availability=0.8)
    s = stats(answered=400, abandoned=20, wait_ms=20 * 60_000, handled=400, talk_ms=400 * 300_000)
    inputs = erlang_inputs(s, 3600)
    members = {"a": "available", "b": "busy", "c": "offline", "d": "away"}
    caps = {"a": 3, "b": 3, "c": 1, "d": 3}  # staffed a, b, d: 9 slots, concurrency 3
    fig = staffing_figures(inputs, q, members, caps)
    assert fig["staffed_agents"] == 3 and fig["concurrency"] == 3.0 and fig["servers"] == math.floor(9 * 0.8)
    for model in ("erlang_c", "erlang_a"):
        patience = inputs["patience_seconds"] if model == "erlang_a" else None
        n = required_servers(inputs["arrival_rate"], 300.0, patience, 30, 0.8, model)
        got = fig["models"][model]
        assert got["required_agents"] == math.ceil(n / (3 * 0.8)) and got["staffing_gap_agents"] == got["required_agents"] - 3
        want = erlang_a(7, inputs["arrival_rate"], 300.0, patience, 30) if model == "erlang_a" else \
            erlang_c(7, inputs["arrival_rate"], 300.0, 30)
        assert got["predicted_service_level"] == want["service_level"]
        assert got["predicted_asa_seconds"] == want["asa_seconds"]


def test_queue_interval_carries_required_and_staffed_agents():
    """ag1 staffed the whole 10:00-10:15 interval, ag2 half of it (offline at 10:07:30): 1.5 agents."""
    cs = []
    for i in range(20):
        start = at("10:00:00") + i * 40_000
        c = Contact(f"c{i}", created=start).queued("Q1", start).answered("Q1", start + 5_000, agent="ag1")
        c.wrapup(start + 125_000, start + 130_000)
        cs.append(c)
    events = by_time(*cs) + [agent_state("ag1", "available", "09:59:00"), agent_state("ag2", "available", "10:00:00"),
                             agent_state("ag2", "offline", "10:07:30")]
    events.sort(key=lambda e: e.ts_ms)
    r = run(events + [tick("10:20:00")], engine(threshold_seconds=20, service_level_target=0.8), flush=False)
    rec = r.record("Q1", "10:00:00")
    assert rec["staffed_agents"] == 1.5
    s = r.pipeline.queues.intervals[("Q1", "voice")][at("10:00:00")]
    q = r.pipeline.settings.queue("Q1")
    want = interval_staffing(s, q, 900_000, {"ag1": "available"}, {}, None, at("10:00:00"))["required_agents"]
    lam, aht = rec["offered"] / 900, rec["aht_seconds"]
    assert rec["required_agents"] == want == {
        "erlang_c": required_servers(lam, aht, None, 20, 0.8, "erlang_c"),
        "erlang_a": required_servers(lam, aht, None, 20, 0.8, "erlang_a")}  # no abandon: Erlang A is Erlang C


# (the gauges of these figures: tests/unit/metrics/test_outcomes.py)

def test_staffed_agents_do_not_depend_on_the_order_presence_arrives_in():
    """Every agent.state_changed is a point of the queue's presence timeline, even one older than the
    agent's latest state: the same staffed agents whatever the order of state changes. An agent that
    stops listing the queue is offline there from that event on (applied in arrival order)."""
    c = Contact("c1", created="10:01:00").queued("Q1", "10:01:00").answered("Q1", "10:01:05", agent="ag1")
    c.wrapup("10:03:00", "10:03:30")
    presence = [agent_state("ag1", "available", "10:00:00"), agent_state("ag2", "available", "10:00:00"),
                agent_state("ag2", "busy", "10:03:00"), agent_state("ag2", "offline", "10:07:30"),
                agent_state("ag2", "away", "10:12:00")]
    leaves = [agent_state("ag3", "available", "10:00:00"), agent_state("ag3", "busy", "10:05:00", queues=("Q2",))]
    records = []
    for order in (presence, list(reversed(presence)), presence[3:] + presence[:3]):
        r = run(list(order) + leaves + c.events + [tick("10:20:00")], engine(), flush=False)
        records.append(r.record("Q1", "10:00:00"))
    # ag1 15 min + ag2 7.5 + 3 min + ag3 5 min (then it serves Q2 only) = 30.5 agent-minutes over 15
    assert [rec["staffed_agents"] for rec in records] == [30.5 / 15] * 3
    assert records[0] == records[1] == records[2]
