"""Unidentified customers (placeholder ids, EngineSettings.unidentified_customers): their contacts
count in every queue, experience and agent figure, never match one another, and are counted as
`unidentified_contacts` in resolution_day, retention_day and the provisional gauges (their test:
tests/unit/metrics/test_outcomes.py). docs/unidentified-customers.md."""
from __future__ import annotations

import dataclasses

from processor.decode import load_rollup_validators
from tests.coretools import Contact, at, by_time, churned, engine, run

D23 = "2026-11-23T00:00:00.000Z"


def c(cid: str, customer: str, created: str, issue: str | None = None) -> Contact:
    t = f"2026-11-23T{created}Z"
    k = Contact(cid, "voice", t, customer_id=customer, issue=issue, agent="a1")
    k.queued("Q1", t).answered("Q1", at(t) + 10_000).wrapup(at(t) + 60_000, at(t) + 70_000)
    k.resolved(at(t) + 120_000).survey("csat", 5, 5, at(t) + 180_000)
    return k


def contacts(placeholders: tuple[str, ...]) -> list[Contact]:
    """Three contacts of u1 (the second a repeat), and five of unidentified callers one hour apart,
    every one resolved: as one customer they would be four repeats."""
    out = [c("k1", "u1", "09:00:00", "billing"), c("k2", "u1", "09:30:00", "billing"), c("k3", "u1", "09:45:00", "x")]
    for i in range(5):
        out.append(c(f"p{i}", placeholders[i % len(placeholders)], f"1{i}:00:00"))
    return out


def test_placeholders_count_in_queue_figures_but_not_as_one_customer():
    r = run(by_time(*contacts(("0", "Anonymous", " unknown ", "0", "0"))) + [churned("0", "2026-11-24T10:00:00Z")])
    day = r.latest_of("resolution_day")[("resolution_day", "Q1", "voice", D23)]
    # u1: k1 first (followed by k2: not FCR), k2 repeat, k3 first and FCR (other issue); p0-p4 left out
    assert (day["contacts"], day["repeats"], day["first_contacts"], day["first_contact_resolved"]) == (3, 1, 2, 1)
    assert (day["resolved"], day["reopened"], day["unidentified_contacts"]) == (3, 0, 5)
    for h in (30, 60, 90):
        ret = r.latest_of("retention_day")[("retention_day", "Q1", "voice", D23, h)]
        # the churn of "0" churns nobody: u1 is the only customer
        assert (ret["customers"], ret["churned"], ret["unidentified_contacts"]) == (1, 0, 5)
        load_rollup_validators()["retention_day"](ret)
    load_rollup_validators()["resolution_day"](day)
    # every other figure is what it is with a distinct customer per caller
    named = run(by_time(*contacts(tuple(f"caller-{i}" for i in range(5)))))
    others = [k for k in ("queue_interval", "experience_interval", "agent_interval")]
    for kind in others:
        assert r.latest_of(kind) == named.latest_of(kind) and r.latest_of(kind), kind
    named_day = named.latest_of("resolution_day")[("resolution_day", "Q1", "voice", D23)]
    assert (named_day["contacts"], named_day["unidentified_contacts"]) == (8, 0)


def test_a_day_of_unidentified_callers_only_is_published_with_null_ratios():
    r = run(by_time(c("p1", "0", "10:00:00"), c("p2", "0", "10:10:00")))
    day = r.latest_of("resolution_day")[("resolution_day", "Q1", "voice", D23)]
    assert (day["contacts"], day["first_contacts"], day["unidentified_contacts"]) == (0, 0, 2)
    assert day["fcr"] is None and day["repeat_rate"] is None and day["reopen_rate"] is None
    ret = r.latest_of("retention_day")[("retention_day", "Q1", "voice", D23, 30)]
    assert (ret["customers"], ret["retention_rate"], ret["unidentified_contacts"]) == (0, None, 2)


def test_the_list_is_a_setting():
    settings = dataclasses.replace(engine(), unidentified_customers=frozenset({"guest"}))
    r = run(by_time(c("p1", "0", "10:00:00"), c("p2", "0", "10:10:00"), c("g1", "Guest", "10:20:00")), settings)
    day = r.latest_of("resolution_day")[("resolution_day", "Q1", "voice", D23)]
    # "0" is a customer now: p2 repeats p1; "Guest" is not identified
    assert (day["contacts"], day["repeats"], day["unidentified_contacts"]) == (2, 1, 1)
