"""`queue_interval` rollup records from the whole pipeline (stage 1 + stage 2), numbers by hand.

Defaults unless a test says otherwise: 15-minute intervals, lateness 30 s, retention 2 h,
T = 20 s, S = 5 s, target 0.80, UTC.
"""
from __future__ import annotations

import random

import pytest

from processor.core.settings import QueueSettings
from tests.coretools import Contact, by_time, engine, ev, run, tick


def mixed_interval() -> list[Contact]:
    return [
        # wait 15 s (within T); connected 10:00:15 -> 10:04:15 = 240 s with 30 s hold: talk 210, hold 30; ACW 60
        Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:15")
        .hold("10:01:00", "10:01:30").wrapup("10:04:15", "10:05:15"),
        # wait 25 s (over T); talk 10:01:25 -> 10:03:25 = 120 s, ACW 20 s
        Contact("c2", created="10:01:00").queued("Q1", "10:01:00").answered("Q1", "10:01:25")
        .wrapup("10:03:25", "10:03:45"),
        # abandoned after 4 s: short, within T
        Contact("c3", created="10:02:00").queued("Q1", "10:02:00").abandoned("Q1", "10:02:04"),
        # abandoned after 40 s: not short, not within T
        Contact("c4", created="10:03:00").queued("Q1", "10:03:00").abandoned("Q1", "10:03:40"),
        # flowed out after 120 s
        Contact("c5", created="10:04:00").queued("Q1", "10:04:00").flowed_out("Q1", "10:06:00"),
        # abandoned after exactly 5 s: not short (wait < S is short), within T
        Contact("c6", created="10:05:00").queued("Q1", "10:05:00").abandoned("Q1", "10:05:05"),
    ]


def test_one_interval_every_figure():
    r = run(by_time(*mixed_interval()))
    assert len(r.records) == 1 and r.dead == []
    rec = r.record("Q1", "10:00:00")
    assert rec["kind"] == "queue_interval" and rec["version"] == 1
    assert (rec["interval_start"], rec["interval_end"]) == ("2026-11-23T10:00:00.000Z", "2026-11-23T10:15:00.000Z")
    assert (rec["queue_id"], rec["channel"], rec["threshold_seconds"]) == ("Q1", "voice", 20.0)
    # offered = 2 answered + 3 abandoned + 1 flowed out
    assert (rec["offered"], rec["answered"], rec["abandoned"], rec["flowed_out"]) == (6, 2, 3, 1)
    assert rec["short_abandoned"] == 1                 # c3 (4 s); c6 at 5 s is not short
    assert rec["answered_within_threshold"] == 1       # c1 (15 s); c2 waited 25 s
    assert rec["abandoned_within_threshold"] == 2      # c3 (4 s), c6 (5 s)
    assert rec["service_level"] == pytest.approx({
        "answered_over_offered": 1 / 5,                # 1 / (6 - 1)
        "answered_over_answered": 1 / 2,               # 1 / 2
        "abandons_positive": 3 / 5,                    # (1 + 2) / (2 + 3)
    })
    assert rec["asa_seconds"] == 20.0                  # (15 + 25) / 2
    assert rec["abandon_rate"] == pytest.approx(0.4)   # (3 - 1) / (6 - 1)
    assert rec["max_wait_seconds"] == 120.0            # c5
    assert rec["handled"] == 2
    assert (rec["talk_seconds"], rec["hold_seconds"], rec["acw_seconds"]) == (330.0, 30.0, 80.0)  # 210+120, 30, 60+20
    assert rec["aht_seconds"] == 220.0                 # (330 + 30 + 80) / 2


def test_version_1_is_published_when_stream_time_passes_interval_end_plus_lateness():
    evs = by_time(*mixed_interval())
    r = run(evs + [tick("10:15:29.999")], flush=False)
    assert r.records == []
    r = run(evs + [tick("10:15:29.999"), tick("10:15:30")], flush=False)
    assert [(x["interval_start"], x["version"], x["offered"]) for x in r.records] == [("2026-11-23T10:00:00.000Z", 1, 6)]


def test_event_exactly_on_the_interval_edge_belongs_to_the_interval_it_starts():
    r = run(by_time(
        Contact("a", created="10:14:50").queued("Q1", "10:14:50").abandoned("Q1", "10:14:59.999"),   # wait 9.999
        Contact("b", created="10:14:50").queued("Q1", "10:14:50").answered("Q1", "10:15:00.000")
        .wrapup("10:15:00.000", "10:15:00.000"),                                                       # wait 10
    ))
    early, late = r.record("Q1", "10:00:00"), r.record("Q1", "10:15:00")
    assert (early["offered"], early["abandoned"], early["answered"]) == (1, 1, 0)
    assert (late["offered"], late["answered"], late["abandoned"]) == (1, 1, 0)
    assert late["asa_seconds"] == 10.0
    assert late["handled"] == 1 and late["aht_seconds"] == 0.0   # a zero-length leg is still a handled leg


def test_segment_spanning_an_edge_counts_where_it_ends():
    r = run(by_time(
        # queued in 10:00-10:15, answered in 10:15-10:30 after 25 s; leg ends at 10:33 (next interval again)
        Contact("c1", created="10:14:45").queued("Q1", "10:14:45").answered("Q1", "10:15:10")
        .wrapup("10:30:10", "10:33:00"),
    ))
    latest = r.latest()
    assert ("Q1", "voice", "2026-11-23T10:00:00.000Z") not in latest   # nothing ended there: no record
    seg = r.record("Q1", "10:15:00")
    assert (seg["offered"], seg["answered"], seg["answered_within_threshold"], seg["handled"]) == (1, 1, 0, 0)
    assert seg["max_wait_seconds"] == 25.0
    assert seg["service_level"]["answered_over_offered"] == 0.0   # 0 / (1 - 0)
    leg = r.record("Q1", "10:30:00")
    # the leg ended in 10:30-10:45: talk 10:15:10 -> 10:30:10 = 900 s, ACW 170 s; no segment ended there
    assert (leg["offered"], leg["handled"], leg["talk_seconds"], leg["acw_seconds"]) == (0, 1, 900.0, 170.0)
    assert leg["aht_seconds"] == 1070.0
    assert leg["service_level"]["answered_over_offered"] is None and leg["asa_seconds"] is None


def test_transfer_between_queues_counts_each_segment_and_leg_in_its_own_queue():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
         .hold("10:01:00", "10:01:20").transferred("Q2", "10:02:10")
         .queued("Q2", "10:02:10").answered("Q2", "10:02:40", agent="a2")
         .wrapup("10:04:40", "10:05:10"))
    r = run(c.events)
    q1, q2 = r.record("Q1", "10:00:00"), r.record("Q2", "10:00:00")
    # Q1: one offered, answered in 10 s; leg 10:00:10 -> 10:02:10 = 120 s, hold 20 -> talk 100, no ACW
    assert (q1["offered"], q1["answered"], q1["asa_seconds"], q1["flowed_out"]) == (1, 1, 10.0, 0)
    assert (q1["handled"], q1["talk_seconds"], q1["hold_seconds"], q1["acw_seconds"]) == (1, 100.0, 20.0, 0.0)
    assert q1["aht_seconds"] == 120.0
    # Q2: one offered, answered in 30 s (over T); talk 120 s, ACW 30 s
    assert (q2["offered"], q2["answered"], q2["answered_within_threshold"], q2["asa_seconds"]) == (1, 1, 0, 30.0)
    assert (q2["handled"], q2["talk_seconds"], q2["hold_seconds"], q2["acw_seconds"]) == (1, 120.0, 0.0, 30.0)
    assert q2["aht_seconds"] == 150.0


def test_flowed_out_of_one_queue_into_another():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").flowed_out("Q1", "10:01:00", "overflow")
         .queued("Q2", "10:01:00").abandoned("Q2", "10:01:03"))
    r = run(c.events)
    q1, q2 = r.record("Q1", "10:00:00"), r.record("Q2", "10:00:00")
    assert (q1["offered"], q1["flowed_out"], q1["abandoned"], q1["abandon_rate"]) == (1, 1, 0, 0.0)  # 0 / (1 - 0)
    assert q1["service_level"] == {"answered_over_offered": 0.0, "answered_over_answered": None,
                                   "abandons_positive": None}
    # Q2: a 3 s abandon is short: offered - short = 0 -> null ratios
    assert (q2["offered"], q2["abandoned"], q2["short_abandoned"]) == (1, 1, 1)
    assert q2["abandon_rate"] is None and q2["service_level"]["answered_over_offered"] is None
    assert q2["service_level"]["abandons_positive"] == 1.0   # (0 + 1) / (0 + 1)


@pytest.mark.parametrize("wait, short", [("10:00:04.999", 1), ("10:00:05.000", 0), ("10:00:05.001", 0)])
def test_short_abandon_around_the_limit_end_to_end(wait, short):
    r = run(Contact("c1", created="10:00:00").queued("Q1", "10:00:00").abandoned("Q1", wait).events)
    rec = r.record("Q1", "10:00:00")
    assert rec["short_abandoned"] == short
    # abandon rate = (1 - short) / (1 - short): 1.0, or null when the only abandon is short
    assert rec["abandon_rate"] == (None if short else 1.0)


def test_channels_get_separate_records():
    r = run(by_time(
        Contact("v", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05"),
        Contact("c", channel="chat", created="10:00:00").queued("Q1", "10:00:00").abandoned("Q1", "10:00:30"),
        Contact("u", channel=None).queued("Q1", "10:00:00").abandoned("Q1", "10:00:40"),
    ))
    assert sorted(k[1] for k in r.latest()) == ["chat", "unknown", "voice"]
    assert r.record("Q1", "10:00:00", "chat")["abandoned"] == 1
    assert r.record("Q1", "10:00:00", "voice")["answered"] == 1


# ---------------------------------------------------------------------------- per-queue settings


def test_per_queue_settings_apply_to_their_queue_only():
    settings = engine(queues={"sales": QueueSettings(threshold_seconds=10, short_abandon_seconds=2,
                                                     service_level_target=0.9)})
    evs = []
    for q in ("sales", "support"):
        evs += Contact(f"{q}-1", created="10:00:00").queued(q, "10:00:00").answered(q, "10:00:15").events
        evs += Contact(f"{q}-2", created="10:00:00").queued(q, "10:00:00").abandoned(q, "10:00:03").events
    r = run(by_time_events(evs), settings)
    sales, support = r.record("sales", "10:00:00"), r.record("support", "10:00:00")
    # sales: T = 10 -> the 15 s answer is late; S = 2 -> the 3 s abandon is not short
    assert (sales["threshold_seconds"], sales["answered_within_threshold"], sales["short_abandoned"]) == (10.0, 0, 0)
    assert sales["service_level"]["answered_over_offered"] == 0.0            # 0 / (2 - 0)
    assert sales["abandon_rate"] == 0.5                                      # (1 - 0) / (2 - 0)
    assert sales["service_level_target"] == 0.9
    # support: defaults T = 20, S = 5 -> answer within, abandon short
    assert (support["threshold_seconds"], support["answered_within_threshold"], support["short_abandoned"]) == (20.0, 1, 1)
    assert support["service_level"]["answered_over_offered"] == 1.0          # 1 / (2 - 1)
    assert support["abandon_rate"] == 0.0                                    # (1 - 1) / (2 - 1)
    assert support["service_level_target"] == 0.8


def by_time_events(evs):
    return sorted(evs, key=lambda e: e.ts_ms)


# ---------------------------------------------------------------------------- duplicates, order, lateness


def test_duplicate_event_ids_change_nothing():
    evs = by_time(*mixed_interval())
    rng = random.Random(3)
    noisy = []
    for e in evs:
        noisy.append(e)
        if rng.random() < 0.5:
            noisy.append(e)                      # immediate redelivery
    noisy += rng.sample(evs, 8)                  # redelivery long after, still within retention
    base, dup = run(evs), run(noisy)
    assert dup.records == base.records
    assert dup.pipeline.counts.duplicates == len(noisy) - len(evs)


def test_duplicate_id_with_different_content_is_still_a_duplicate():
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
    twin = ev("contact.abandoned", "10:00:30", "c1", event_id=c.events[2].event_id, queue_id="Q1")
    r = run(c.events + [twin])
    assert r.record("Q1", "10:00:00")["answered"] == 1 and r.record("Q1", "10:00:00")["abandoned"] == 0


def test_out_of_order_within_lateness_gives_the_same_records():
    evs = by_time(*mixed_interval()) + [tick("10:20:00")]
    rng = random.Random(11)
    # arrival = event time + a delay below the 30 s lateness
    shuffled = sorted(evs, key=lambda e: e.ts_ms + rng.randrange(0, 30_000))
    assert shuffled != evs
    base, late = run(evs, flush=False), run(shuffled, flush=False)
    assert late.dead == [] and late.records == base.records
    assert [x["version"] for x in late.records] == [1]


def test_answer_arriving_before_its_queued_is_counted_with_the_right_wait():
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:18")
    created, queued, answered = c.events
    r = run([created, answered, tick("10:00:40"), queued])   # queued arrives 40 s after its event time
    rec = r.record("Q1", "10:00:00")
    assert r.dead == [] and (rec["answered"], rec["asa_seconds"], rec["answered_within_threshold"]) == (1, 18.0, 1)


def test_late_event_republishes_with_version_plus_one():
    c1 = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
    c1.wrapup("10:02:10", "10:03:10")                   # talk 120, ACW 60
    late = Contact("c2", created="10:05:00").queued("Q1", "10:05:00").abandoned("Q1", "10:05:30")
    hold = Contact("c1").hold("10:01:00", "10:01:40")   # c1's hold pair, delivered late
    dup = late.events[-1]
    unrelated_late = ev("contact.resolved", "10:04:00", "c1")
    evs = c1.events + [tick("10:16:00")] + late.events + hold.events + [dup, unrelated_late, tick("10:20:00")]
    r = run(evs, flush=False)
    assert r.dead == []
    assert [(x["version"], x["offered"], x["abandoned"], x["talk_seconds"], x["hold_seconds"]) for x in r.records] == [
        (1, 1, 0, 120.0, 0.0),   # published at stream 10:16:00 (>= 10:15:00 + 30 s)
        # c2's created and queued change no ended figure: no record; its abandon does
        (2, 2, 1, 120.0, 0.0),   # offered 1 -> 2, abandoned 0 -> 1
        # hold_started 10:01:00 alone: the hold runs until wrapup_started 10:02:10 = 70 s, talk 120 - 70 = 50
        (3, 2, 1, 50.0, 70.0),
        # hold_ended 10:01:40: hold 40 s, talk 80 s
        (4, 2, 1, 80.0, 40.0),
        # the duplicate abandon and the resolved change nothing: no version 5
    ]
    assert [x["aht_seconds"] for x in r.records] == [180.0] * 4   # (talk + hold + 60) is 180 s throughout
    assert r.records[-1]["interval_start"] == "2026-11-23T10:00:00.000Z"


def test_too_late_event_is_dead_lettered_and_changes_nothing():
    c1 = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
    stale = Contact("c2", created="10:05:00").queued("Q1", "10:05:00").abandoned("Q1", "10:05:30")
    # stream 12:05:00 - retention 2 h = 10:05:00: events at or after 10:05:00 still correct the record
    r = run(c1.events + [tick("12:05:00")] + stale.events, flush=False)
    assert r.dead == [] and [(x["version"], x["offered"]) for x in r.records] == [(1, 1), (2, 2)]
    # stream 12:05:30.001: all three of c2's events are older than the retention
    r = run(c1.events + [tick("12:05:30.001")] + stale.events, flush=False)
    assert [(d.event.contact_id, d.reason) for d in r.dead] == [("c2", "too_late")] * 3
    assert [(x["version"], x["offered"]) for x in r.records] == [(1, 1)]
    assert r.pipeline.counts.dead_letters == 3


def test_late_created_moves_a_published_segment_to_its_channel():
    c = Contact("c1", channel=None).queued("Q1", "10:00:00").abandoned("Q1", "10:00:30")
    created = ev("contact.created", "10:00:00", "c1", channel="chat", customer_id="x")
    r = run(c.events + [tick("10:16:00"), created, tick("10:17:00")], flush=False)
    assert [(x["channel"], x["version"], x["offered"]) for x in r.records] == [
        ("unknown", 1, 1),
        ("chat", 1, 1),        # first publication of the chat record
        ("unknown", 2, 0),     # correction: the segment left the unknown channel
    ]


def test_thirty_minute_intervals():
    r = run(by_time(
        Contact("a", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:29:59.999"),
        Contact("b", created="10:00:00").queued("Q1", "10:29:00").answered("Q1", "10:30:00"),
    ), engine(interval_minutes=30))
    first, second = r.record("Q1", "10:00:00"), r.record("Q1", "10:30:00")
    assert (first["interval_end"], first["answered"], second["answered"]) == ("2026-11-23T10:30:00.000Z", 1, 1)
    assert first["max_wait_seconds"] == 1799.999   # 29 min 59.999 s


def test_records_match_the_published_schema():
    from processor.decode import load_rollup_validators
    validate = load_rollup_validators()["queue_interval"]
    r = run(by_time(*mixed_interval(),
                    # a leg-only interval: every segment ratio is null
                    Contact("x", created="10:14:00").queued("Q1", "10:14:00").answered("Q1", "10:14:30")
                    .wrapup("10:16:00", "10:17:00")))
    assert len(r.records) == 2
    for rec in r.records:
        validate(rec)


def test_lateness_boundary_decides_between_version_1_and_a_correction():
    base = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10").events
    straggler = Contact("c2", created="10:14:40").queued("Q1", "10:14:40")
    # abandoned at 10:14:59.999 (wait 19.999 s), arriving when stream time is exactly 30 s later:
    # still in time, the first publication already counts it
    on_time = base + straggler.events + [tick("10:15:29.999"),
                                        ev("contact.abandoned", "10:14:59.999", "c2", queue_id="Q1"),
                                        tick("10:15:30")]
    r = run(on_time, flush=False)
    assert [(x["version"], x["offered"], x["abandoned_within_threshold"]) for x in r.records] == [(1, 2, 1)]
    # one millisecond later the interval is already out (10:15:00 + 30 s): version 1 without it, then version 2
    late = base + straggler.events + [tick("10:15:30"), ev("contact.abandoned", "10:14:59.999", "c2", queue_id="Q1")]
    r = run(late, flush=False)
    assert [(x["version"], x["offered"]) for x in r.records] == [(1, 1), (2, 2)]
    assert r.dead == []


def test_a_sliced_publication_ends_while_the_clock_has_not_started():
    """After a rebuild, changed agent and resolution keys wait for the clock: `advancing` must not
    ask for another call that cannot publish them (the worker's loop spun for good, holding stage
    two's lock: seen in the chaos drill, seed 24)."""
    from processor.core.queues import QueueBook
    from processor.core.settings import EngineSettings

    book = QueueBook(EngineSettings())
    book.agent_book.publisher.published[("q", "a1", 0)] = [1, "x"]
    book.agent_book.publisher.touch(("q", "a1", 0), 0)
    book.resolution.resolution.published[("q", "voice", 0, 1)] = [1, "x"]
    book.resolution.resolution.touch(("q", "voice", 0, 1), 0)
    assert book.stream_ms <= 0
    for _ in range(3):
        assert book.advance(limit=1) == []
    assert not book.advancing
