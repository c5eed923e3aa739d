"""`experience_interval` records from the whole pipeline, numbers by hand.

FRT = contact.created -> first non-automated message.agent_replied, attributed to the interval of
that reply; TTR = created -> first contact.resolved, attributed to the interval of the resolution.
Percentiles by nearest rank: the value at rank ceil(p/100 * n) of the sorted durations.
Surveys and QA are attributed to the interval of their own event. The queue is the contact's queue
at the time of the measured event (its latest contact.queued at or before it), `none` before any.
Defaults: 15-minute intervals, lateness 30 s, UTC; 2026-11-23 is a Monday.
"""
from __future__ import annotations

import random

import pytest

from processor.core.figures import nearest_rank
from processor.core.settings import Calendar, QueueSettings
from processor.decode import load_rollup_validators
from tests.coretools import Contact, by_time, engine, ev, run, tick

PARIS_9_17 = Calendar(hours=(((540, 1020),),) * 5 + ((), ()))
SETTINGS = engine(queues={"Q2": QueueSettings(time_zone="Europe/Paris", calendar=PARIS_9_17)})


def frt_contacts() -> list[Contact]:
    return [
        # FRT 10:00:00 -> 10:02:00 = 120 s (the automated greeting at 10:00:01 does not count);
        # TTR 10:00:00 -> 10:10:00 = 600 s
        Contact("c1", "chat", "10:00:00").queued("Q1", "10:00:00").replied("10:00:01", automated=True)
        .replied("10:02:00").resolved("10:10:00"),
        # FRT 30 s; the second reply changes nothing
        Contact("c2", "chat", "10:01:00").queued("Q1", "10:01:00").replied("10:01:30").replied("10:03:00"),
        # created in the previous interval, first reply in this one: FRT 900 s, counted here
        Contact("c3", "chat", "09:50:00").queued("Q1", "09:50:00").replied("10:05:00"),
        # FRT 180 s
        Contact("c4", "chat", "10:00:00").queued("Q1", "10:00:00").replied("10:03:00"),
        # never queued: queue `none`, FRT 240 s
        Contact("c5", "chat", "10:00:00").replied("10:04:00"),
        # first reply in the next interval: FRT 60 s there
        Contact("c6", "chat", "10:14:00").queued("Q1", "10:14:00").replied("10:15:00"),
    ]


def test_nearest_rank():
    values = [30, 120, 180, 900]
    # n = 4: p50 -> rank 2, p75 -> rank 3, p90 -> rank ceil(3.6) = 4
    assert [nearest_rank(values, p) for p in (50, 75, 90)] == [120, 180, 900]
    assert [nearest_rank([7], p) for p in (50, 75, 90)] == [7, 7, 7]
    assert nearest_rank([], 50) is None
    # n = 10: p90 -> rank 9
    assert nearest_rank(list(range(1, 11)), 90) == 9


def test_frt_and_ttr_percentiles():
    r = run(by_time(*frt_contacts()))
    latest = r.latest_of("experience_interval")
    q1 = latest[("experience_interval", "Q1", "chat", "2026-11-23T10:00:00.000Z")]
    assert q1["version"] == 1 and q1["interval_end"] == "2026-11-23T10:15:00.000Z"
    # FRT of c1..c4 sorted: 30, 120, 180, 900
    assert q1["frt_seconds"] == {"p50": 120.0, "p75": 180.0, "p90": 900.0, "count": 4}
    assert q1["ttr_seconds"] == {"p50": 600.0, "p75": 600.0, "p90": 600.0, "count": 1}
    assert "frt_business_seconds" not in q1 and q1["time_zone"] == "UTC"   # Q1 has no calendar
    none = latest[("experience_interval", "none", "chat", "2026-11-23T10:00:00.000Z")]
    assert none["frt_seconds"] == {"p50": 240.0, "p75": 240.0, "p90": 240.0, "count": 1}
    nxt = latest[("experience_interval", "Q1", "chat", "2026-11-23T10:15:00.000Z")]
    assert nxt["frt_seconds"]["count"] == 1 and nxt["frt_seconds"]["p50"] == 60.0
    # the interval where c3 was created has no record (nothing measured ended there)
    assert ("experience_interval", "Q1", "chat", "2026-11-23T09:45:00.000Z") not in latest
    for rec in latest.values():
        assert rec["csat"] == {"value": None, "count": 0} and rec["qa_score"] == {"value": None, "count": 0}


def test_queue_at_the_time_of_the_reply_after_a_transfer():
    c = (Contact("c7", "chat", "10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10")
         .transferred("Q3", "10:02:00").queued("Q3", "10:02:00").replied("10:03:00"))
    latest = run(c.events).latest_of("experience_interval")
    assert set(latest) == {("experience_interval", "Q3", "chat", "2026-11-23T10:00:00.000Z")}
    assert latest[("experience_interval", "Q3", "chat", "2026-11-23T10:00:00.000Z")]["frt_seconds"]["p50"] == 180.0


def test_surveys_on_their_own_scales_and_qa():
    c = Contact("c1", "voice", "10:00:00").queued("Q1", "10:00:00")
    # CSAT: top two boxes, score >= scale_max - 1: 5/5 yes, 4/5 yes, 3/5 no, 9/10 yes, 8/10 no -> 3 / 5
    for score, scale in ((5, 5), (4, 5), (3, 5), (9, 10), (8, 10)):
        c.survey("csat", score, scale, "10:12:00")
    # CES: score / scale_max >= 5/7: 5/7 yes, 4/7 no, 4/5 (0.8) yes, 3/5 (0.6) no, 8/10 yes, 7/10 (0.7) no -> 3 / 6
    for score, scale in ((5, 7), (4, 7), (4, 5), (3, 5), (8, 10), (7, 10)):
        c.survey("ces", score, scale, "10:12:00")
    # NPS on 0-10 (others scaled to it): promoters 10, 9, 5 of 5 (= 10); detractors 6; passives 8, 4 of 5 (= 8)
    # -> 100 * (3 - 1) / 6 = 33.33 points
    for score, scale in ((10, 10), (9, 10), (8, 10), (6, 10), (5, 5), (4, 5)):
        c.survey("nps", score, scale, "10:12:00")
    # complaint handling: the CSAT formula: 5/5 yes, 2/5 no -> 0.5
    c.survey("complaint", 5, 5, "10:12:00").survey("complaint", 2, 5, "10:12:00")
    # QA: mean of 80 and 95.5 = 87.75
    c.qa(80, "10:13:00").qa(95.5, "10:13:00")
    # a survey in the next interval counts there
    c.survey("csat", 1, 5, "10:20:00")
    latest = run(c.events).latest_of("experience_interval")
    rec = latest[("experience_interval", "Q1", "voice", "2026-11-23T10:00:00.000Z")]
    assert rec["csat"] == {"value": 0.6, "count": 5}
    assert rec["ces"] == {"value": 0.5, "count": 6}
    assert rec["nps"]["count"] == 6 and rec["nps"]["value"] == pytest.approx(100 * 2 / 6)
    assert rec["complaint_csat"] == {"value": 0.5, "count": 2}
    assert rec["qa_score"] == {"value": 87.75, "count": 2}
    assert rec["frt_seconds"] == {"p50": None, "p75": None, "p90": None, "count": 0}
    later = latest[("experience_interval", "Q1", "voice", "2026-11-23T10:15:00.000Z")]
    assert later["csat"] == {"value": 0.0, "count": 1}


def test_business_hours_in_the_queue_time_zone():
    # Q2: Mon-Fri 09:00-17:00 Paris (UTC+1 in November)
    b1 = (Contact("b1", "email", "2026-11-20T16:30:00Z")        # Fri 17:30 Paris: after closing
          .queued("Q2", "2026-11-20T16:30:00Z").replied("2026-11-23T10:00:30Z"))  # Mon 11:00:30 Paris
    b2 = (Contact("b2", "email", "2026-11-23T07:00:00Z")        # Mon 08:00 Paris: before opening
          .queued("Q2", "2026-11-23T07:00:00Z")
          .replied("2026-11-23T08:00:00Z").resolved("2026-11-23T08:00:00Z"))  # exactly at opening
    latest = run(by_time(b1, b2), SETTINGS).latest_of("experience_interval")
    ten = latest[("experience_interval", "Q2", "email", "2026-11-23T10:00:00.000Z")]
    # calendar: Fri 16:30 -> Mon 10:00:30 = 2 d 17 h 30 min 30 s = 172800 + 61200 + 1830 = 235830 s
    assert ten["frt_seconds"] == {"p50": 235830.0, "p75": 235830.0, "p90": 235830.0, "count": 1}
    # business: Friday after closing = 0; Monday 09:00 -> 11:00:30 Paris = 7230 s
    assert ten["frt_business_seconds"] == {"p50": 7230.0, "p75": 7230.0, "p90": 7230.0, "count": 1}
    assert ten["ttr_business_seconds"] == {"p50": None, "p75": None, "p90": None, "count": 0}
    assert ten["time_zone"] == "Europe/Paris"
    eight = latest[("experience_interval", "Q2", "email", "2026-11-23T08:00:00.000Z")]
    # calendar 1 h each; in business hours nothing: the whole wait was before opening
    assert eight["frt_seconds"]["p50"] == 3600.0 and eight["ttr_seconds"]["p50"] == 3600.0
    assert eight["frt_business_seconds"]["p50"] == 0.0 and eight["ttr_business_seconds"]["p50"] == 0.0


def test_late_events_republish_with_version_plus_one():
    c = Contact("c1", "chat", "10:00:00").queued("Q1", "10:00:00").replied("10:02:00").survey("csat", 5, 5, "10:12:00")
    r = run(c.events + [tick("10:15:30")], flush=False)
    first = r.of("experience_interval")
    assert [(x["version"], x["csat"]["count"], x["frt_seconds"]["count"]) for x in first] == [(1, 1, 1)]
    p = r.pipeline
    # a survey of 10:14 arrives at stream time 10:15:30 (past the lateness): version 2, csat 2 answers
    late = ev("survey.responded", "10:14:00", "c1", event_id="late-1", survey="csat", score=2.0, scale_max=5.0)
    recs, dead = p.feed(late)
    assert dead == []
    # the queue's record, and the record of the agent the customer dealt with (a1 replied), both version 2
    assert sorted((x["kind"], x["version"], x["csat"]) for x in recs) == [
        ("agent_interval", 2, {"value": 0.5, "count": 2}), ("experience_interval", 2, {"value": 0.5, "count": 2})]
    # its duplicate (same event_id) changes nothing and publishes nothing
    assert p.feed(late) == ([], [])


def test_a_late_queued_moves_the_figure_from_none_to_the_queue():
    c = Contact("c9", "chat", "10:00:00").replied("10:05:00")
    r = run(c.events + [tick("10:15:30")], flush=False)
    assert [(x["queue_id"], x["version"], x["frt_seconds"]["count"]) for x in r.of("experience_interval")] == [
        ("none", 1, 1)]
    recs, _ = r.pipeline.feed(ev("contact.queued", "10:01:00", "c9", queue_id="Q1"))
    exp = [(x["queue_id"], x["version"], x["frt_seconds"]["count"]) for x in recs if x["kind"] == "experience_interval"]
    # the `none` record is corrected to zero answers (version 2); Q1's first version has the FRT
    assert sorted(exp) == [("Q1", 1, 1), ("none", 2, 0)]


def test_records_match_the_schema_and_arrival_order_does_not_matter():
    evs = by_time(*frt_contacts())
    base = run(evs, SETTINGS)
    validate = load_rollup_validators()
    for rec in base.all_records:
        validate[rec["kind"]](rec)
    # arrival shuffled within the lateness (each event up to 29 s late) gives the same records
    rng = random.Random(5)
    shuffled = sorted(evs, key=lambda e: e.ts_ms + rng.randrange(29_000))
    assert shuffled != evs
    assert run(shuffled, SETTINGS).of("experience_interval") == base.of("experience_interval")
