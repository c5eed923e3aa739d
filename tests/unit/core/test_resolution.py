"""`resolution_day` and `retention_day` records from the whole pipeline, numbers by hand.

W = 7 days; "within W" of a contact's creation t is [t, t + W). A contact is a repeat when a
matching contact of the same customer (same issue, or either without issue) was created less
than W before it; a first contact is first-contact resolved when resolved within W, not reopened
within W and not followed by a matching contact within W. Each contact counts under its first
queue (`none` if never queued), its channel and the local day of its creation; the day's record
is published once day end + W is behind the watermark (stream time - 30 s).
"""
from __future__ import annotations

import random

import pytest

from processor.core.settings import QueueSettings
from processor.decode import load_rollup_validators
from tests.coretools import Contact, at, by_time, churned, engine, ev, run, tick

D23 = "2026-11-23T00:00:00.000Z"
D30 = "2026-11-30T00:00:00.000Z"


def c(cid: str, customer: str, created: str, issue: str | None = None, queue: str | None = "Q1") -> Contact:
    t = created if "T" in created else f"2026-11-23T{created}Z"
    k = Contact(cid, "voice", t, customer_id=customer, issue=issue)
    if queue:  # answered after 10 s, talk 50 s, ACW 10 s: the contact settles (stage one can let it go)
        k.queued(queue, t).answered(queue, at(t) + 10_000).wrapup(at(t) + 60_000, at(t) + 70_000)
    return k


def journeys() -> list[Contact]:
    return [
        # u1: a2 one second inside W after a1, same issue -> a2 repeat, a1 followed (not FCR)
        c("a1", "u1", "10:00:00", "billing").resolved("2026-11-23T10:05:00Z"),
        c("a2", "u1", "2026-11-30T09:59:59Z", "billing"),
        # u2: b2 one second outside W -> not a repeat; b1 resolved and nothing followed: FCR
        c("b1", "u2", "11:00:00", "billing").resolved("2026-11-23T11:05:00Z"),
        c("b2", "u2", "2026-11-30T11:00:01Z", "billing"),
        # u3: reopened one second after W -> not reopened within W: FCR
        c("c1", "u3", "12:00:00").resolved("2026-11-23T12:10:00Z").reopened("2026-11-30T12:00:01Z"),
        # u4: reopened the next day -> reopened, not FCR
        c("d1", "u4", "13:00:00").resolved("2026-11-23T13:10:00Z").reopened("2026-11-24T09:00:00Z"),
        # u5: different issues do not match, a contact without issue matches both
        c("e1", "u5", "14:00:00", "X").resolved("2026-11-23T14:05:00Z"),   # first, followed by e3: not FCR
        c("e2", "u5", "15:00:00", "Y"),                                     # first, never resolved
        c("e3", "u5", "16:00:00").resolved("2026-11-23T16:05:00Z"),         # repeat (no issue)
        # u6: never queued -> queue `none`; resolved: FCR
        c("f1", "u6", "17:00:00", queue=None).resolved("2026-11-23T17:01:00Z"),
        # u7: resolved exactly W after creation -> not within W: not resolved
        c("g1", "u7", "18:00:00", "Z").resolved("2026-11-30T18:00:00Z"),
        # u8: the same issue again exactly W later -> not a repeat; h1 is FCR
        c("h1", "u8", "19:00:00", "Z").resolved("2026-11-23T19:05:00Z"),
        c("h2", "u8", "2026-11-30T19:00:00Z", "Z"),
    ]


def test_resolution_day_every_figure():
    r = run(by_time(*journeys()))
    latest = r.latest_of("resolution_day")
    day = latest[("resolution_day", "Q1", "voice", D23)]
    assert day["interval_end"] == "2026-11-24T00:00:00.000Z" and day["window_days"] == 7
    # contacts a1 b1 c1 d1 e1 e2 e3 g1 h1 = 9; repeats: e3 -> first contacts 8
    assert (day["contacts"], day["repeats"], day["first_contacts"]) == (9, 1, 8)
    # resolved within W: a1 b1 c1 d1 e1 e3 h1 = 7 (not g1, not e2); reopened within W: d1
    assert (day["resolved"], day["reopened"]) == (7, 1)
    # FCR: b1, c1, h1 (a1 and e1 followed, d1 reopened, e2 unresolved, g1 resolved too late)
    assert day["first_contact_resolved"] == 3
    assert day["fcr"] == 3 / 8 and day["repeat_rate"] == 1 / 9 and day["reopen_rate"] == 1 / 7
    later = latest[("resolution_day", "Q1", "voice", D30)]
    # a2 (repeat), b2 and h2 (first contacts), none resolved
    assert (later["contacts"], later["repeats"], later["first_contacts"], later["first_contact_resolved"]) == (3, 1, 2, 0)
    assert later["fcr"] == 0.0 and later["resolved"] == 0 and later["reopen_rate"] is None
    none = latest[("resolution_day", "none", "voice", D23)]
    assert (none["contacts"], none["first_contacts"], none["first_contact_resolved"], none["fcr"]) == (1, 1, 1, 1.0)
    validate = load_rollup_validators()["resolution_day"]
    for rec in latest.values():
        validate(rec)


def test_published_once_day_plus_w_is_behind_the_watermark_and_provisional_before():
    evs = by_time(*journeys())
    r = run(evs + [tick("2026-12-01T00:00:29.999Z")], flush=False)
    assert r.of("resolution_day") == []
    # the open window, as the gauge shows it: both days of Q1 summed (9 + 3 contacts ...)
    prov = r.pipeline.queues.resolution.provisional(r.pipeline.queues.stream_ms)
    assert prov[("Q1", "voice")]["contacts"] == 12 and prov[("Q1", "voice")]["first_contacts"] == 10
    assert prov[("Q1", "voice")]["fcr"] == 3 / 10
    recs, _ = r.pipeline.feed(tick("2026-12-01T00:00:30Z"))   # watermark = 2026-11-24 + 7 d
    assert sorted((x["queue_id"], x["interval_start"], x["version"]) for x in recs if x["kind"] == "resolution_day") == [
        ("Q1", D23, 1), ("none", D23, 1)]
    # the published day leaves the provisional figure
    assert r.pipeline.queues.resolution.provisional(r.pipeline.queues.stream_ms)[("Q1", "voice")]["contacts"] == 3


def test_a_late_reopen_inside_w_corrects_the_published_day():
    k = c("k1", "u9", "23:30:00").resolved("2026-11-23T23:40:00Z")
    r = run(k.events + [tick("2026-12-01T00:00:30Z")], flush=False)
    assert [(x["version"], x["fcr"], x["reopened"]) for x in r.of("resolution_day")] == [(1, 1.0, 0)]
    # reopened at 2026-11-30T23:00 (< created + W = 23:30), arriving 1 h late: within the 2 h retention
    recs, dead = r.pipeline.feed(ev("contact.reopened", "2026-11-30T23:00:00Z", "k1"))
    assert dead == []
    assert [(x["version"], x["fcr"], x["reopened"], x["reopen_rate"]) for x in recs if x["kind"] == "resolution_day"] == [
        (2, 0.0, 1, 1.0)]


def test_day_of_the_queue_time_zone_and_configurable_window():
    settings = engine(queues={"NY": QueueSettings(time_zone="America/New_York")}, window_days=1)
    # 03:00Z on the 24th is 22:00 on the 23rd in New York (UTC-5)
    k1 = c("n1", "u1", "2026-11-24T03:00:00Z", queue="NY").resolved("2026-11-24T03:10:00Z")
    # 23 h later, within W = 1 day: a repeat; k1 is not FCR
    k2 = c("n2", "u1", "2026-11-25T02:00:00Z", queue="NY")
    latest = run(by_time(k1, k2), settings).latest_of("resolution_day")
    d = latest[("resolution_day", "NY", "voice", "2026-11-23T05:00:00.000Z")]
    assert d["interval_end"] == "2026-11-24T05:00:00.000Z" and d["time_zone"] == "America/New_York"
    assert (d["contacts"], d["first_contact_resolved"], d["window_days"]) == (1, 0, 1)
    assert latest[("resolution_day", "NY", "voice", "2026-11-24T05:00:00.000Z")]["repeats"] == 1


def test_contacts_on_other_channels_and_contact_ids_are_one_journey():
    # a chat and a later call of the same customer on the same issue: the call is a repeat
    chat = Contact("x1", "chat", "2026-11-23T10:00:00Z", customer_id="u1", issue="i").queued("Q1", "2026-11-23T10:00:00Z") \
        .resolved("2026-11-23T10:30:00Z")
    call = Contact("x2", "voice", "2026-11-24T10:00:00Z", customer_id="u1", issue="i").queued("Q2", "2026-11-24T10:00:00Z")
    latest = run(by_time(chat, call)).latest_of("resolution_day")
    assert latest[("resolution_day", "Q1", "chat", D23)]["first_contact_resolved"] == 0
    assert latest[("resolution_day", "Q2", "voice", "2026-11-24T00:00:00.000Z")]["repeats"] == 1


def test_state_is_bounded_by_the_window():
    evs = by_time(*journeys())
    r = run(evs + [tick("2026-12-02T03:00:00Z")], flush=False)
    p = r.pipeline
    p.expire()
    # day 11-23 ended 11-24 00:00: + W + 2 h retention = 12-01 02:00 < 12-02 03:00: its counters are gone,
    # day 11-30 (ends 12-01 00:00 + W) is kept
    assert {g[2] for g in p.queues.resolution.days} == {at(D30)}
    # contacts are kept whole while a day they can touch may still change (created + 2 W + 1 day + retention)
    assert {f[0] for f in p.journeys.facts.values()} == {"contact"}
    r2 = run(evs + [tick("2026-12-10T00:00:00Z")], flush=False)
    r2.pipeline.expire()
    # a1: 11-23 10:00 + 2 W + 25 h + 2 h = 12-08 13:00 < 12-10: slimmed to what retention needs;
    # a2: 11-30 09:59:59 + 2 W + 27 h = 12-15 12:59:59: still whole
    kinds = {fid: f[0] for fid, f in r2.pipeline.journeys.facts.items()}
    assert kinds["j|a1"] == "seen" and kinds["j|a2"] == "contact"
    # stage one keeps a contact's profile W after its last event: a1's (last event 11-23) is gone
    assert "a1" not in r2.pipeline.contacts.profiles and "a1" not in r2.pipeline.contacts.contacts


def test_retention_30_60_90_days():
    # five customers with a contact on 2026-11-23 (queue Q1, voice)
    evs = by_time(
        c("r1", "u1", "10:00:00"), c("r2", "u2", "10:00:00"), c("r3", "u3", "10:00:00"), c("r4", "u4", "10:00:00"),
        c("r5a", "u5", "09:00:00"), c("r5b", "u5", "12:00:00"),
    )
    churns = [
        churned("u1", "2026-12-23T09:59:59Z"),   # 30 d - 1 s after its contact: churned within 30, 60, 90
        churned("u2", "2026-12-23T10:00:00Z"),   # exactly 30 d: not within 30; within 60 and 90
        churned("u4", "2026-11-22T10:00:00Z"),   # before its contact: not churned after it
        churned("u5", "2026-12-23T10:00:00Z"),   # 30 d 1 h after its first contact of the day (09:00)
    ]
    r = run(sorted(evs + churns, key=lambda e: e.ts_ms))
    got = {x["horizon_days"]: x for x in r.of("retention_day") if x["queue_id"] == "Q1"}
    assert set(got) == {30, 60, 90}
    # 30 d: churned u1 -> 4 of 5 retained; 60 and 90 d: churned u1, u2, u5 -> 2 of 5
    assert [(got[h]["customers"], got[h]["churned"], got[h]["retained"], got[h]["retention_rate"]) for h in (30, 60, 90)] == [
        (5, 1, 4, 0.8), (5, 3, 2, 0.4), (5, 3, 2, 0.4)]
    assert got[30]["interval_start"] == D23 and got[30]["interval_end"] == "2026-11-24T00:00:00.000Z"
    validate = load_rollup_validators()["retention_day"]
    for rec in got.values():
        validate(rec)


def test_retention_published_after_each_horizon():
    k = c("r1", "u1", "10:00:00")
    r = run(k.events + [tick("2026-12-24T00:00:29Z")], flush=False)
    assert r.of("retention_day") == []
    recs, _ = r.pipeline.feed(tick("2026-12-24T00:00:30Z"))  # watermark = 11-24 + 30 d
    assert [(x["kind"], x["horizon_days"], x["retention_rate"]) for x in recs] == [("retention_day", 30, 1.0)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duplicates_and_arrival_order_change_nothing(seed):
    evs = by_time(*journeys())
    rng = random.Random(seed)
    # every event up to 29 s late (within the lateness), and a seventh of them sent twice
    noisy = sorted(evs + evs[seed::7], key=lambda e: e.ts_ms + rng.randrange(29_000))
    assert run(noisy).of("resolution_day") == run(evs).of("resolution_day")
