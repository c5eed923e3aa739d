"""A repeated `customer.churned` event id is a duplicate (contract §1): counted, and it changes nothing,
whatever it says, also after stage one was rebuilt from its table (contacts.py CustomerState), and
after its id was forgotten (journeys.py keeps the first content of a churn fact id).
Defaults: retention 2 h, W 7 days, retention horizons 30 / 60 / 90 days; 2026-11-23 UTC.
"""
from __future__ import annotations

import dataclasses
import json

from processor.core.contacts import ContactBook
from processor.core.journeys import JourneyBook
from tests.coretools import Contact, Run, at, churned, engine, run, tick

DAY = 86_400_000


def customers() -> list:
    """Two customers with a contact each on the 23rd; u1 churns on the 24th (within 30 days)."""
    c1 = Contact("c1", created="09:00:00", customer_id="u1").queued("Q1", "09:00:01").abandoned("Q1", "09:00:20")
    c2 = Contact("c2", created="09:10:00", customer_id="u2").queued("Q1", "09:10:01").abandoned("Q1", "09:10:20")
    return sorted(c1.events + c2.events, key=lambda e: e.ts_ms)


CHURN = churned("u1", "10:00:00")


def retention_records(records: list[dict]) -> dict:
    r = Run(None, [], [], records)
    return {k: {f: v for f, v in rec.items() if f != "version"} for k, rec in r.latest_of("retention_day").items()}


def test_a_repeated_churn_is_counted_as_a_duplicate_and_changes_nothing():
    clean = run(customers() + [CHURN, tick("10:30:00")])
    assert clean.pipeline.counts.duplicates == 0
    for repeat in (CHURN,                                                     # the same message again
                   dataclasses.replace(CHURN, ts_ms=at("10:20:00")),          # same id, another time
                   dataclasses.replace(CHURN, ts_ms=at("08:50:00"))):         # ... before u1's contact
        r = run(customers() + [CHURN, tick("10:10:00"), repeat, tick("10:30:00")])
        assert r.pipeline.counts.duplicates == 1, repeat
        assert r.dead == []
        assert retention_records(r.all_records) == retention_records(clean.all_records)
    got = retention_records(clean.all_records)[("retention_day", "Q1", "voice", "2026-11-23T00:00:00.000Z", 30)]
    assert (got["customers"], got["churned"]) == (2, 1)


def test_churn_ids_survive_a_restart_of_stage_one_and_are_kept_for_the_retention():
    book = ContactBook(engine())
    for e in customers() + [CHURN]:
        book.ingest(e)
    table = {k: json.dumps(v) for k, v in book.take_dirty_customers().items()}  # what the changelog holds
    assert set(table) == {"u1"} and book.take_dirty_customers() == {}
    rebuilt = ContactBook(engine())  # a restarted worker: stage one from its tables only
    for customer, state in table.items():
        rebuilt.restore_customer(customer, json.loads(state))
    res = rebuilt.ingest(dataclasses.replace(CHURN, ts_ms=at("10:20:00")))
    assert res.duplicate
    assert res.journey_deltas == [(f"ch|{CHURN.event_id}", "u1", ("churn", "u1", at("10:00:00")))]  # re-asserted as sent
    # an id older than the retention is forgotten (an event that old is too late anyway), and deleted
    rebuilt.ingest(tick("12:00:00"))
    rebuilt.expire()
    assert "u1" in rebuilt.customers
    rebuilt.ingest(tick("12:00:00.001"))
    rebuilt.expire()
    assert "u1" not in rebuilt.customers and rebuilt.take_dirty_customers() == {"u1": None}
    assert [d.reason for d in rebuilt.ingest(CHURN).dead_letters] == ["too_late"]


def test_a_churn_id_past_stage_ones_memory_still_changes_nothing_downstream():
    """Re-sent with a newer time after stage one forgot the id: the journey book keeps the first content."""
    book = JourneyBook(engine())
    fid = f"ch|{CHURN.event_id}"
    book.apply(fid, ("churn", "u1", at("10:00:00")))
    book.apply(fid, ("churn", "u1", at("10:00:00") + 40 * DAY))
    book.apply(fid, ("churn", "u9", at("10:00:00")))
    assert book.facts[fid] == ("churn", "u1", at("10:00:00"))
    assert book.customers["u1"].churns == {fid: at("10:00:00")} and "u9" not in book.customers


def test_a_churn_under_another_customer_is_another_key():
    """Keyed by customer, as the input topic is: the same id under another customer_id is not recognised by
    stage one (it may be on another partition), and changes no figure of the first customer."""
    other = dataclasses.replace(CHURN, customer_id="u2")
    clean = run(customers() + [CHURN, tick("10:30:00")])
    r = run(customers() + [CHURN, other, tick("10:30:00")])
    assert r.pipeline.counts.duplicates == 0
    assert retention_records(r.all_records) == retention_records(clean.all_records)
