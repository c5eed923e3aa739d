"""Stage one: a contact's events to queue segments and agent legs (segments.py, contacts.py)."""
from __future__ import annotations

import random

from processor.core.contacts import ContactBook
from processor.core.segments import NEVER, derive_facts
from tests.coretools import Contact, at, engine, ev, tick


def facts_of(c: Contact) -> tuple[dict, list]:
    return derive_facts(c.contact_id, sorted(c.events, key=lambda e: e.sort_key()))


def open_until(c: Contact, settings=None) -> float | None:
    """When what is open of the contact goes stale (None: nothing open; NEVER: no limit)."""
    status: dict = {}
    derive_facts(c.contact_id, sorted(c.events, key=lambda e: e.sort_key()), settings=settings, status=status)
    return status["open_until"]


def segs(facts: dict) -> list[tuple]:
    return sorted(f for f in facts.values() if f[0] == "seg")


def legs(facts: dict) -> list[tuple]:
    return sorted(f for f in facts.values() if f[0] == "leg")


def test_answered_call_with_hold_and_acw():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:01").answered("Q1", "10:00:16")
         .hold("10:02:00", "10:02:45").wrapup("10:05:16", "10:06:00"))
    facts, orphans = facts_of(c)
    assert orphans == []
    # one segment in Q1, waited 15 s, ended by the answer
    assert segs(facts) == [("seg", "Q1", "voice", at("10:00:01"), at("10:00:16"), "answered")]
    # answered 10:00:16 -> wrapup_started 10:05:16 = 300 s connected, of which 45 s on hold:
    # talk = 300 - 45 = 255 s, hold = 45 s, ACW = 10:05:16 -> 10:06:00 = 44 s; leg ends at wrapup_ended
    assert legs(facts) == [("leg", "Q1", "voice", at("10:06:00"), 255_000, 45_000, 44_000)]
    assert open_until(c) is None  # settled: nothing open


def test_transfer_makes_one_segment_and_one_leg_per_queue():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
         .hold("10:01:00", "10:01:20").transferred("Q2", "10:02:10")
         .queued("Q2", "10:02:10").answered("Q2", "10:02:40", agent="a2")
         .wrapup("10:04:40", "10:05:10"))
    facts, orphans = facts_of(c)
    assert orphans == []
    assert segs(facts) == [
        ("seg", "Q1", "voice", at("10:00:00"), at("10:00:10"), "answered"),   # waited 10 s in Q1
        ("seg", "Q2", "voice", at("10:02:10"), at("10:02:40"), "answered"),   # waited 30 s in Q2
    ]
    assert legs(facts) == [
        # Q1 leg: 10:00:10 -> transfer 10:02:10 = 120 s, hold 20 s, talk 100 s, no ACW
        ("leg", "Q1", "voice", at("10:02:10"), 100_000, 20_000, 0),
        # Q2 leg: 10:02:40 -> wrapup 10:04:40 = 120 s talk, ACW 30 s
        ("leg", "Q2", "voice", at("10:05:10"), 120_000, 0, 30_000),
    ]


def test_transfer_while_on_hold_closes_the_hold_at_the_transfer():
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
    c._add("contact.hold_started", "10:01:10", agent_id="a1")
    c.transferred("Q2", "10:01:40")
    facts, orphans = facts_of(c)
    assert orphans == []
    # 90 s connected, last 30 s on hold -> talk 60, hold 30
    assert legs(facts) == [("leg", "Q1", "voice", at("10:01:40"), 60_000, 30_000, 0)]


def test_abandoned_and_flowed_out_end_segments_without_legs():
    a = Contact("a", created="10:00:00").queued("Q1", "10:00:00").abandoned("Q1", "10:00:07")
    f = Contact("f", channel="chat", created="10:00:00").queued("Q1", "10:00:00").flowed_out("Q1", "10:03:00")
    assert segs(facts_of(a)[0]) == [("seg", "Q1", "voice", at("10:00:00"), at("10:00:07"), "abandoned")]
    assert segs(facts_of(f)[0]) == [("seg", "Q1", "chat", at("10:00:00"), at("10:03:00"), "flowed_out")]
    assert legs(facts_of(a)[0]) == legs(facts_of(f)[0]) == []


def test_flowed_out_then_queued_elsewhere_counts_in_both_queues():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").flowed_out("Q1", "10:01:00", "overflow")
         .queued("Q2", "10:01:00").answered("Q2", "10:01:05"))
    facts, _ = facts_of(c)
    assert [(f[1], f[5], f[4] - f[3]) for f in segs(facts)] == [("Q1", "flowed_out", 60_000), ("Q2", "answered", 5_000)]


def test_open_segment_and_unfinished_leg():
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:00")
    facts, _ = facts_of(c)
    # waiting; without settings there is no staleness limit, so no instant at which it goes stale
    assert segs(facts) == [("seg", "Q1", "voice", at("10:00:00"), None, None, None)]
    assert open_until(c) == NEVER
    assert open_until(c, engine()) == at("10:00:00") + 4 * 3_600_000  # the voice default: 4 h after its last event
    c.answered("Q1", "10:00:05")
    facts, _ = facts_of(c)
    assert legs(facts) == [] and open_until(c) == NEVER  # connected, no leg end yet
    assert open_until(c, engine()) == at("10:00:05") + 4 * 3_600_000


def test_channel_comes_from_created_and_is_unknown_without_it():
    c = Contact("c1", channel=None).queued("Q1", "10:00:00").abandoned("Q1", "10:00:30")
    assert segs(facts_of(c)[0])[0][2] == "unknown"


def test_orphans_are_reported():
    c = Contact("c1", created="10:00:00").answered("Q1", "10:00:05")
    c._add("contact.hold_ended", "10:00:09", agent_id="a1")
    facts, orphans = facts_of(c)
    assert [e.type for e, _ in orphans] == ["contact.answered", "contact.hold_ended"]
    assert facts == {}


def test_same_millisecond_events_follow_lifecycle_order():
    # queued and abandoned in the same millisecond, written in the "wrong" order: wait 0, not an orphan
    c = Contact("c1", created="10:00:00")
    c.abandoned("Q1", "10:00:00")
    c.queued("Q1", "10:00:00")
    facts, orphans = facts_of(c)
    assert orphans == []
    assert segs(facts) == [("seg", "Q1", "voice", at("10:00:00"), at("10:00:00"), "abandoned")]


# ---------------------------------------------------------------------------- ContactBook


def book_feed(book: ContactBook, events):
    out = []
    for e in events:
        out.append(book.ingest(e))
    return out


def test_contact_book_duplicate_changes_nothing():
    book = ContactBook(engine())
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
    book_feed(book, c.events)
    before = dict(book.contacts["c1"].facts)
    res = book.ingest(c.events[1])
    assert res.duplicate and not res.dead_letters
    # the re-asserted deltas are the current facts, unchanged
    assert {fid: f for fid, _, f in res.deltas} == before
    assert book.contacts["c1"].facts == before
    assert len(book.contacts["c1"].events) == 3


def test_contact_book_out_of_order_within_lateness_is_placed_by_event_time():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:02").answered("Q1", "10:00:12")
         .wrapup("10:01:00", "10:01:30"))
    in_order = ContactBook(engine())
    book_feed(in_order, c.events)
    shuffled = ContactBook(engine())
    evs = c.events[:]
    random.Random(7).shuffle(evs)
    results = book_feed(shuffled, evs)
    assert not any(r.dead_letters for r in results)
    assert shuffled.contacts["c1"].facts == in_order.contacts["c1"].facts


def test_answer_before_its_queued_waits_for_the_lateness_then_is_dead_lettered():
    book = ContactBook(engine(lateness_s=30))
    ans = ev("contact.answered", "10:00:10", "c1", queue_id="Q1", agent_id="a1")
    assert book.ingest(ans).dead_letters == []
    # stream time 10:00:40 = answer + 30 s: not yet *older* than the lateness
    assert book.ingest(tick("10:00:40")).dead_letters == []
    # stream 10:00:40.001: the answer is now older than the lateness and still has no queued
    dl = book.ingest(tick("10:00:40.001")).dead_letters
    assert [(d.event.event_id, d.reason) for d in dl] == [(ans.event_id, "impossible_order")]


def test_answer_before_queued_is_repaired_when_queued_arrives_in_time():
    book = ContactBook(engine(lateness_s=30))
    book.ingest(ev("contact.answered", "10:00:10", "c1", queue_id="Q1", agent_id="a1"))
    book.ingest(tick("10:00:35"))
    res = book.ingest(ev("contact.queued", "10:00:01", "c1", queue_id="Q1"))
    assert res.dead_letters == []
    seg = [f for _, _, f in res.deltas if f and f[0] == "seg"]
    assert seg == [("seg", "Q1", "unknown", at("10:00:01"), at("10:00:10"), "answered")]


def test_too_late_is_dead_lettered_at_retention_boundary():
    book = ContactBook(engine(retention_s=3600))
    book.ingest(tick("12:00:00"))
    # exactly retention old (11:00:00.000) is still accepted
    ok = book.ingest(ev("contact.queued", "11:00:00", "c1", queue_id="Q1"))
    assert ok.dead_letters == [] and ok.deltas
    late = book.ingest(ev("contact.queued", "10:59:59.999", "c2", queue_id="Q1"))
    assert [d.reason for d in late.dead_letters] == ["too_late"]
    assert late.deltas == [] and "c2" not in book.contacts


def test_transfer_and_answer_in_the_next_queue_in_the_same_second():
    # one-second timestamps: the transfer, the queued in Q2 and the answer in Q2 all carry 10:01:00,
    # and the hold on the first leg ends at that same second
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
         .hold("10:00:40", "10:01:00").transferred("Q2", "10:01:00")
         .queued("Q2", "10:01:00").answered("Q2", "10:01:00", agent="a2").wrapup("10:03:00", "10:03:30"))
    facts, orphans = facts_of(c)
    assert orphans == []
    assert legs(facts) == [
        # Q1: 10:00:10 -> 10:01:00 = 50 s, 20 s on hold -> talk 30, no ACW
        ("leg", "Q1", "voice", at("10:01:00"), 30_000, 20_000, 0),
        # Q2: answered with a 0 s wait, talk 10:01:00 -> 10:03:00 = 120 s, ACW 30 s
        ("leg", "Q2", "voice", at("10:03:30"), 120_000, 0, 30_000),
    ]
    assert [(f[1], f[4] - f[3]) for f in segs(facts)] == [("Q1", 10_000), ("Q2", 0)]


def test_answer_and_immediate_transfer_in_the_same_millisecond():
    # a zero-length leg: answered and transferred at once (no earlier leg connected)
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
         .transferred("Q2", "10:00:10").queued("Q2", "10:00:10").abandoned("Q2", "10:00:40"))
    facts, orphans = facts_of(c)
    assert orphans == []
    assert legs(facts) == [("leg", "Q1", "voice", at("10:00:10"), 0, 0, 0)]
    assert [(f[1], f[5]) for f in segs(facts)] == [("Q1", "answered"), ("Q2", "abandoned")]
