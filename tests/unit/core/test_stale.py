"""Contacts whose end event is lost (segments.py, contacts.py, queues.py): after the staleness limit of
their channel (no event for that long, in event time), they leave the live gauges, are counted as
stale, and their state is freed; published figures do not change. Defaults: voice 4 h, lateness 30 s,
retention 2 h, 15-minute intervals, 2026-11-23 UTC.
"""
from __future__ import annotations

from processor.core.live import live_view
from processor.core.pipeline import Pipeline
from processor.core.settings import DEFAULT_STALE_AFTER_MS, HOUR_MS
from tests.coretools import Contact, at, by_time, engine, ev, run, tick

H = HOUR_MS


def limits(**by_channel) -> tuple:
    """The default staleness table with some channels changed (ms, or None = never)."""
    return tuple((c, by_channel.get(c, ms)) for c, ms in DEFAULT_STALE_AFTER_MS)


def traffic(*hours: str) -> list:
    """One answered and wrapped-up call in Q1 at each time: other contacts that move stream time on."""
    out = []
    for n, t in enumerate(hours):
        start = at(t)
        out += Contact(f"t{n}", created=start).queued("Q1", start).answered("Q1", start + 5_000) \
            .wrapup(start + 60_000, start + 70_000).events
    return out


def gauges(p: Pipeline, qc=("Q1", "voice")) -> tuple:
    """(waiting, longest wait, stale counter) of a queue and channel, at the live clock."""
    row = next((r for r in live_view(p.queues, p.queues.latest_ms) if (r["queue_id"], r["channel"]) == qc), None)
    waiting = (row["waiting"], row["longest_wait_seconds"]) if row else (0, None)
    return (*waiting, p.queues.stale.get(qc, 0))


def feed_all(p: Pipeline, events) -> tuple[list, list]:
    records, dead = [], []
    for e in events:
        recs, dls = p.feed(e)
        records += recs
        dead += dls
    return records, dead


LOST = Contact("lost", created="08:00:00", customer_id="cu-lost").queued("Q1", "08:00:00")  # no answer, no abandon
BEFORE = traffic("08:10:00", "10:00:00", "11:50:00")


def test_a_call_whose_end_is_lost_leaves_the_gauges_once_stale_and_is_counted():
    p = Pipeline(engine())
    feed_all(p, by_time(LOST) + BEFORE + [tick("12:00:30")])
    # stale at its last event + 4 h = 12:00:00, once the watermark (stream time - 30 s) is past it
    assert gauges(p) == (1, 4 * 3600 + 30.0, 0)
    feed_all(p, [tick("12:00:30.001")])
    assert gauges(p) == (0, None, 1)
    # only once: later traffic and housekeeping count it no more
    feed_all(p, traffic("12:30:00", "13:00:00") + [tick("13:30:00")])
    p.expire()
    assert gauges(p)[2] == 1


def test_published_figures_do_not_change():
    """The stale segment never ended: it is in no offered, answered or abandoned figure, before or after."""
    end = [tick("16:00:00")]
    with_lost = run(by_time(LOST) + BEFORE + traffic("12:30:00", "15:00:00") + end, flush=False)
    without = run(BEFORE + traffic("12:30:00", "15:00:00") + end, flush=False)
    assert with_lost.records == without.records  # every queue_interval record, every version, in order
    assert with_lost.pipeline.queues.stale == {("Q1", "voice"): 1} and without.pipeline.queues.stale == {}
    assert with_lost.dead == []


def test_a_stale_contact_is_freed_only_once_nothing_can_pair_with_it_any_more():
    p = Pipeline(engine())
    feed_all(p, by_time(LOST) + BEFORE + traffic("12:30:00", "13:55:00") + [tick("14:00:00")])
    p.expire()
    # stale at 12:00, retention 2 h: at stream 14:00 an answer of 12:00 is not too late yet, so it is kept
    assert "lost" in p.contacts.contacts and any(fid.startswith("s|lost|") for fid in p.queues.facts)
    feed_all(p, [tick("14:00:00.001")])
    p.expire()
    assert "lost" not in p.contacts.contacts  # only its profile (created, queued) is kept, for W
    # stage two keeps it with the day's facts (the `today` window), and drops it with them
    assert any(fid.startswith("s|lost|") for fid in p.queues.facts)
    feed_all(p, [tick("2026-11-24T02:00:00Z")])
    p.expire()
    assert not any(fid.startswith("s|lost|") for fid in p.queues.facts)
    assert gauges(p) == (0, None, 1)
    assert p.queues.open.get(("Q1", "voice"), {}) == {} and p.queues._stale_ids == set()


def test_a_late_end_that_happened_within_the_limit_is_handled_normally():
    """An answer of 11:59 (3 h 59 min after queueing, within the limit) that arrives once the contact
    went stale but within the retention counts like any late event: the 11:45 interval is corrected."""
    answer = ev("contact.answered", "11:59:00", "lost", queue_id="Q1", agent_id="a1")
    late = run(by_time(LOST) + BEFORE + traffic("12:05:00") + [tick("12:30:00"), answer, tick("13:00:00")], flush=False)
    in_order = run(by_time(LOST) + BEFORE + [answer] + traffic("12:05:00") + [tick("12:30:00"), tick("13:00:00")],
                   flush=False)
    assert late.dead == [] and in_order.dead == []

    def figures(r):
        return {k: {f: v for f, v in rec.items() if f != "version"} for k, rec in r.latest().items()}
    assert figures(late) == figures(in_order)
    rec = late.record("Q1", "11:45:00")
    assert (rec["version"], rec["answered"], rec["max_wait_seconds"]) == (2, 2, 3 * 3600 + 59 * 60)
    assert gauges(late.pipeline) == (0, None, 1)  # it did go stale in between: counted once, still
    assert gauges(in_order.pipeline) == (0, None, 0)


def test_an_end_after_the_limit_is_an_orphan_whether_or_not_the_state_was_freed():
    """An answer 6 h after the last event finds nothing open: stale at 12:00, the contact was given up."""
    answer = ev("contact.answered", "14:30:00", "lost", queue_id="Q1", agent_id="a1")
    events = by_time(LOST) + BEFORE + traffic("12:30:00", "14:20:00")
    outcomes = []
    for housekeeping in (False, True):
        p = Pipeline(engine())
        records, dead = feed_all(p, events + [tick("14:29:00")])
        if housekeeping:
            p.expire()
            assert "lost" not in p.contacts.contacts
        more, dead2 = feed_all(p, [answer, tick("14:31:00")])
        outcomes.append((records + more + p.finish(flush=True), [(d.event.event_id, d.reason) for d in dead + dead2],
                         gauges(p)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][1] == [(answer.event_id, "impossible_order")]
    assert outcomes[0][2] == (0, None, 1)


def test_an_end_older_than_the_retention_is_too_late():
    p = Pipeline(engine())
    feed_all(p, by_time(LOST) + BEFORE + traffic("12:30:00", "14:20:00") + [tick("14:30:00")])
    p.expire()
    _, dead = feed_all(p, [ev("contact.abandoned", "12:00:00", "lost", queue_id="Q1")])
    assert [d.reason for d in dead] == ["too_late"]


def test_a_leg_never_wrapped_up_is_freed_but_a_long_call_with_events_is_not_cut():
    stuck = Contact("stuck", created="08:00:00").queued("Q1", "08:00:00").answered("Q1", "08:00:10")
    long = (Contact("long", created="08:00:00").queued("Q1", "08:00:00").answered("Q1", "08:00:20")
            .hold("11:00:00", "11:05:00").wrapup("14:00:00", "14:01:00"))  # no gap over 4 h: a real long call
    p = Pipeline(engine())
    feed_all(p, by_time(stuck, long) + traffic("12:30:00", "14:20:00") + [tick("14:30:00")])
    p.expire()
    assert "stuck" not in p.contacts.contacts  # in progress until 12:00:10 (+ 4 h), freed after the retention
    _, dead = feed_all(p, [ev("contact.wrapup_started", "14:31:00", "stuck", agent_id="a1"), tick("14:32:00")])
    assert [d.reason for d in dead] == ["impossible_order"]
    leg = [f for fid, f in p.queues.facts.items() if fid.startswith("l|long|")]
    assert leg == [("leg", "Q1", "voice", at("14:01:00"), at("14:00:00") - at("08:00:20") - 300_000, 300_000, 60_000)]


def test_asynchronous_channels_wait_longer_and_every_event_renews_the_limit():
    day = 24 * H
    settings = engine(stale_after_ms=limits(email=day))
    mail = Contact("m1", channel="email", created="08:00:00").queued("Q1", "08:00:00")
    reply = ev("message.customer_replied", at("08:00:00") + 23 * H, "m1")
    p = Pipeline(settings)
    feed_all(p, by_time(mail) + traffic("12:30:00") + [tick(at("08:00:00") + 23 * H)])
    assert gauges(p, ("Q1", "email"))[0] == 1  # a call would be stale by now; an email (1 day here) is not
    feed_all(p, [reply, tick(at("08:00:00") + 47 * H + 30_000)])
    assert gauges(p, ("Q1", "email")) == (1, (47 * H + 30_000) / 1000, 0)  # renewed by the reply: stale at 47 h
    feed_all(p, [tick(at("08:00:00") + 47 * H + 30_001)])
    assert gauges(p, ("Q1", "email")) == (0, None, 1)


def test_a_channel_whose_limit_is_off_never_goes_stale_and_queues_have_their_own_limits():
    from processor.core.settings import QueueSettings

    settings = engine(queues={"VIP": QueueSettings(stale_after_ms=limits(voice=600_000))},
                      stale_after_ms=limits(voice=None))
    vip = Contact("v1", created="08:00:00").queued("VIP", "08:00:00")
    p = Pipeline(settings)
    feed_all(p, by_time(LOST, vip) + traffic("20:00:00") + [tick("23:00:00")])
    assert gauges(p)[:2] == (1, 15 * 3600.0) and gauges(p, ("VIP", "voice")) == (0, None, 1)
    p.expire()
    assert "lost" in p.contacts.contacts and "v1" not in p.contacts.contacts


def test_a_contact_whose_channel_is_unknown_takes_the_unknown_limit():
    settings = engine(stale_after_ms=limits(unknown=H))
    p = Pipeline(settings)
    feed_all(p, [ev("contact.queued", "08:00:00", "x1", queue_id="Q1"), tick("09:00:30.001")])
    assert gauges(p, ("Q1", "unknown")) == (0, None, 1)


def test_the_stale_instant_travels_with_the_open_segment():
    p = Pipeline(engine())
    feed_all(p, by_time(LOST))
    assert p.queues.facts["s|lost|Q1|" + str(at("08:00:00"))] == ("seg", "Q1", "voice", at("08:00:00"), None, None,
                                                                  at("12:00:00"))
    assert p.contacts.contacts["lost"].until == at("12:00:00")
