"""A leg never wrapped up, at the instant its state may be freed (contacts.ContactBook.expire).

It goes stale at its last event + the limit (a gap equal to the limit is not stale), and an event at
that instant is too_late only once it is older than the retention: until then, housekeeping must keep
the leg, or an end that still pairs would find nothing. Defaults: voice 4 h, retention 2 h.
"""
from __future__ import annotations

from processor.core.pipeline import Pipeline
from tests.coretools import Contact, at, by_time, engine, ev, tick

STUCK = Contact("stuck", created="08:00:00").queued("Q1", "08:00:00").answered("Q1", "08:00:10", agent="a1")
# its leg goes stale at 12:00:10; an end exactly then still pairs
END = [ev("contact.wrapup_started", "12:00:10", "stuck", agent_id="a1"),
       ev("contact.wrapup_ended", "12:00:40", "stuck", agent_id="a1")]


def feed(p: Pipeline, events, housekeeping: bool) -> tuple[list, list]:
    records, dead = [], []
    for e in events:
        recs, dls = p.feed(e)
        records += recs
        dead += [(d.event.event_id, d.reason) for d in dls]
        if housekeeping:
            p.expire()
    return records, dead


def test_an_end_at_the_stale_instant_pairs_until_it_is_older_than_the_retention():
    """At stream time 14:00:10 (the stale instant + the retention, not past it) the leg is still held,
    with housekeeping after every event; the end of 12:00:10 arriving then is handled as without it."""
    events = by_time(STUCK) + [tick("10:00:00"), tick("12:00:00"), tick("14:00:10")] + END + [tick("14:01:00")]
    outcomes = []
    for housekeeping in (False, True):
        p = Pipeline(engine())
        records, dead = feed(p, events, housekeeping)
        outcomes.append((records + p.finish(flush=True), dead))
        leg = [f for fid, f in p.queues.facts.items() if fid.startswith("l|stuck|")]
        assert leg == [("leg", "Q1", "voice", at("12:00:40"), at("12:00:10") - at("08:00:10"), 0, 30_000)]
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == []


def test_the_leg_is_freed_once_its_stale_instant_is_older_than_the_retention():
    p = Pipeline(engine())
    feed(p, by_time(STUCK) + [tick("12:00:00"), tick("14:00:10")], housekeeping=True)
    assert p.contacts.contacts["stuck"].until == at("12:00:10")  # kept: an end of 12:00:10 is not too late
    feed(p, [tick("14:00:10.001")], housekeeping=True)
    assert "stuck" not in p.contacts.contacts
    _, dead = feed(p, END[:1], housekeeping=False)
    assert dead == [(END[0].event_id, "too_late")]
