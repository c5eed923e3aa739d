"""Housekeeping (ContactBook.expire / QueueBook.expire, run every 10 000 events by the pipeline and
periodically by the streaming shell) must forget old state without changing any live figure."""
from __future__ import annotations

from processor.core.live import agents_view, live_view
from tests.coretools import Contact, at, by_time, engine, ev, run, tick


def test_new_waiting_contacts_and_agents_stay_visible_after_housekeeping():
    r = run(Contact("c0", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05").events)
    p = r.pipeline
    p.contacts.expire()
    p.queues.expire()
    # after the first pass every queue has a floor; open segments and presence have no end time
    p.feed(ev("contact.created", "10:01:00", "c1", channel="voice", customer_id="x"))
    p.feed(ev("contact.queued", "10:01:00", "c1", queue_id="Q1"))
    p.feed(ev("agent.state_changed", "10:01:00", agent_id="a9", state="available", queues=("Q1",)))
    row = live_view(p.queues, at("10:01:30"))[0]
    assert (row["waiting"], row["longest_wait_seconds"]) == (1, 30.0)
    assert agents_view(p.queues) == {"Q1": {"available": 1}}
    # and the segment is counted when it ends
    p.feed(ev("contact.abandoned", "10:01:40", "c1", queue_id="Q1"))
    row = live_view(p.queues, at("10:01:50"))[0]
    assert (row["waiting"], row["windows"]["5m"]["abandoned"]) == (0, 1)


def test_expiry_across_midnight_keeps_corrections_today_and_too_late_consistent():
    settings = engine(retention_s=3600)
    early = Contact("c0", created="2026-11-23T23:00:00Z").queued("Q1", "2026-11-23T23:00:00Z") \
        .answered("Q1", "2026-11-23T23:01:00Z").wrapup("2026-11-23T23:02:00Z", "2026-11-23T23:02:30Z")
    late_iv = Contact("c1", created="2026-11-23T23:35:00Z").queued("Q1", "2026-11-23T23:35:00Z") \
        .answered("Q1", "2026-11-23T23:36:00Z").wrapup("2026-11-23T23:37:00Z", "2026-11-23T23:37:10Z")
    today = Contact("c2", created="2026-11-24T00:10:00Z").queued("Q1", "2026-11-24T00:10:00Z") \
        .answered("Q1", "2026-11-24T00:10:08Z").wrapup("2026-11-24T00:11:00Z", "2026-11-24T00:11:20Z")
    r = run(by_time(early, late_iv, today) + [tick("2026-11-24T00:30:00Z")], settings, flush=False)
    assert [(x["interval_start"][11:16], x["version"]) for x in r.records] == [("23:00", 1), ("23:30", 1), ("00:00", 1)]
    p = r.pipeline
    # stream 00:30, retention 1 h -> cutoff 23:30: c0 (last event 23:02:30) is settled and forgotten
    assert p.contacts.expire() == 1 and set(p.contacts.contacts) == {"c1", "c2", "tick"}
    # the 23:00 interval ends at 23:15 <= 23:30: dropped with its facts (c0's segment and leg)
    assert p.queues.expire() == 2
    assert sorted(s for s in p.queues.intervals[("Q1", "voice")]) == [at("2026-11-23T23:30:00Z"), at("2026-11-24T00:00:00Z")]
    # "today" (UTC) is untouched: only c2
    row = live_view(p.queues, at("2026-11-24T00:30:00Z"))[0]
    assert (row["windows"]["today"]["offered"], row["windows"]["today"]["asa_seconds"]) == (1, 8.0)
    # a late event at 23:40 (inside retention) still corrects the 23:30 record: version 2, offered 1 -> 2
    for e in Contact("c3", created="2026-11-23T23:40:00Z").queued("Q1", "2026-11-23T23:40:00Z").events:
        assert p.feed(e) == ([], [])
    recs, dead = p.feed(ev("contact.abandoned", "2026-11-23T23:40:30Z", "c3", queue_id="Q1"))
    assert dead == []
    assert [(x["interval_start"][11:16], x["version"], x["offered"], x["abandoned"]) for x in recs] == [
        ("23:30", 2, 2, 1)]
    # an event older than the retention is dead-lettered and changes nothing
    recs, dead = p.feed(ev("contact.queued", "2026-11-23T23:29:59.999Z", "c4", queue_id="Q1"))
    assert recs == [] and [d.reason for d in dead] == ["too_late"]


def test_a_queue_that_went_quiet_leaves_the_book_after_its_day():
    """A queue seen once (say a mistyped id) must not stay exported as zeros forever."""
    from processor.core.pipeline import Pipeline
    from processor.core.events import Event, parse_ts_ms

    eng = engine()
    p = Pipeline(eng)

    def feed(i, type_, ts, **kw):
        p.feed(Event(event_id=f"q{i}", type=type_, ts_ms=parse_ts_ms(ts), **kw))

    feed(1, "contact.created", "2026-03-02T10:00:00Z", contact_id="x1", channel="voice", customer_id="u1")
    feed(2, "contact.queued", "2026-03-02T10:00:00Z", contact_id="x1", queue_id="typo")
    feed(3, "contact.abandoned", "2026-03-02T10:00:30Z", contact_id="x1", queue_id="typo")
    assert ("typo", "voice") in p.queues.queues()
    # Two days later, traffic on another queue moves stream time; housekeeping runs.
    feed(4, "contact.created", "2026-03-04T10:00:00Z", contact_id="x2", channel="voice", customer_id="u2")
    feed(5, "contact.queued", "2026-03-04T10:00:00Z", contact_id="x2", queue_id="sales")
    p.contacts.expire()
    p.queues.expire()
    assert ("typo", "voice") not in p.queues.queues()
    assert ("typo", "voice") not in p.queues.wait_histograms
    assert ("sales", "voice") in p.queues.queues()  # still waiting: stays
