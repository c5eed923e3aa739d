"""The books' persistence, as the streaming shell uses it: after every event the dirty keys go to
"tables" (dicts here, changelog topics there); a crash loses the books; new books are rebuilt from
the tables only, and the events after the last "commit" are delivered again. The latest record of
every kind must equal an uninterrupted run's, and no key may get two different records of one version.
"""
from __future__ import annotations

import json
from datetime import datetime

import pytest

from processor.core.contacts import ContactBook
from processor.core.events import parse_ts_ms
from processor.core.journeys import JourneyBook
from processor.core.queues import QueueBook
from processor.core.settings import Calendar, EngineSettings, QueueSettings
from processor.decode import decode
from processor.simulator import Simulation, sorted_events
from tests.coretools import record_key, run

ENGINE = EngineSettings(recontact_window_ms=round(0.02 * 86_400_000), queues=(
    ("sales", QueueSettings(time_zone="Europe/Paris", calendar=Calendar(hours=(((480, 1200),),) * 7))),))


@pytest.fixture(scope="module")
def night():
    start = datetime.fromisoformat("2026-03-02T22:30:00+00:00").timestamp()
    raw = sorted_events(Simulation(seed=5, start=start, duration_seconds=9000))
    raw.sort(key=lambda e: parse_ts_ms(e["ts"]))
    return [decode(json.dumps(e)) for e in raw]


class Shell:
    """One partition of every stage, with dict tables."""

    def __init__(self, tables: dict | None = None) -> None:
        self.tables = tables or {name: {} for name in ("contacts", "agents", "profiles", "facts", "published", "journeys",
                                                       "customers", "agent-event-ids")}
        self.contacts, self.queues, self.journeys = ContactBook(ENGINE), QueueBook(ENGINE), JourneyBook(ENGINE)
        if tables is not None:  # rebuild from the tables only
            t = self.tables
            for cid, state in t["contacts"].items():
                self.contacts.restore_contact(cid, json.loads(state))
            for aid, state in t["agents"].items():
                self.contacts.restore_agent(aid, json.loads(state))
            for cid, state in t["profiles"].items():
                if cid not in self.contacts.contacts:
                    self.contacts.restore_profile(cid, json.loads(state))
            for key, value in t["agent-event-ids"].items():
                self.contacts.restore_agent_id(key, json.loads(value))
            for customer, state in t["customers"].items():
                self.contacts.restore_customer(customer, json.loads(state))
            for fid, fact in t["facts"].items():
                self.queues.restore_fact(fid, json.loads(fact))
            for key, value in t["published"].items():
                self.queues.restore_published(key, json.loads(value))
            self.journeys.restore((fid, json.loads(fact)) for fid, fact in t["journeys"].items())
        self.records: list[dict] = []

    def feed(self, e) -> None:
        res = self.contacts.ingest(e)
        for fid, route, fact in res.deltas + res.agent_deltas:
            self.queues.apply(fid, fact, route)
        for fid, route, fact in res.journey_deltas:
            self.journeys.apply(fid, fact, route)
        for fid, route, fact in self.journeys.take_deltas():
            self.queues.apply(fid, fact, route)
        self.journeys.observe(self.contacts.stream_ms)
        self.queues.observe(self.contacts.stream_ms)
        self.records += self.queues.advance()
        self._persist()

    def _persist(self) -> None:
        t = self.tables
        contacts, agents = self.contacts.take_dirty()
        facts, published = self.queues.take_dirty()
        for name, dirty in (("contacts", contacts), ("agents", agents), ("profiles", self.contacts.take_dirty_profiles()),
                            ("facts", facts), ("published", published), ("journeys", self.journeys.take_dirty()),
                            ("customers", self.contacts.take_dirty_customers()),
                            ("agent-event-ids", self.contacts.take_dirty_agent_ids())):
            for key, value in dirty.items():
                if value is None:
                    t[name].pop(key, None)
                else:
                    t[name][key] = json.dumps(value)  # what a changelog holds: JSON

    def expire(self) -> None:
        self.contacts.expire()
        self.queues.expire()
        self.journeys.expire()
        for fid, route, fact in self.journeys.take_deltas():
            self.queues.apply(fid, fact, route)
        self._persist()


def latest(records):
    best = {}
    for r in records:
        k = record_key(r)
        if k not in best or r["version"] > best[k]["version"]:
            best[k] = r
    return best


@pytest.mark.parametrize("crash_at,redeliver", [(0.3, 0), (0.5, 150), (0.75, 40), (0.9, 400)])
def test_rebuilt_books_lose_and_double_nothing(night, crash_at, redeliver):
    want = run(night, ENGINE, flush=False)
    k = int(len(night) * crash_at)
    first = Shell()
    for e in night[:k]:
        first.feed(e)
    first.expire()  # housekeeping before the crash: carries and slimmed facts are in the tables too
    second = Shell(first.tables)
    for e in night[k - redeliver:]:  # the events after the last commit come again
        second.feed(e)
    streamed = first.records + second.records
    got, expected = latest(streamed), latest(want.all_records)
    assert {r["kind"] for r in expected.values()} >= {"queue_interval", "experience_interval", "agent_interval",
                                                      "resolution_day"}
    assert sorted(got) == sorted(expected)
    for key, r in expected.items():
        assert {f: v for f, v in got[key].items() if f != "version"} == {f: v for f, v in r.items() if f != "version"}, key
    contents: dict[tuple, set] = {}
    for r in streamed:
        contents.setdefault((record_key(r), r["version"]), set()).add(json.dumps(r, sort_keys=True))
    assert all(len(v) == 1 for v in contents.values())


def test_stale_contacts_and_churn_ids_come_back_from_the_tables():
    """A call whose end is lost and a repeated churn, across a crash: the rebuilt books go on deciding
    staleness from the tables alone (waiting until the watermark passes its instant, then counted once),
    and recognise the churn id."""
    from processor.core.live import live_view
    from tests.coretools import Contact, at, churned, tick

    lost = Contact("lost", created="2026-03-02T22:40:00Z", customer_id="cu-lost").queued("sales", "2026-03-02T22:40:00Z")
    churn = churned("cu-lost", "2026-03-03T02:39:00Z")
    first = Shell()
    for e in lost.events + [churn, tick("2026-03-03T02:40:30Z")]:
        first.feed(e)
    first.expire()
    second = Shell(first.tables)
    qc = ("sales", "voice")
    assert second.queues.open[qc] and second.queues.stale == {}
    assert second.contacts.customers["cu-lost"].churns == {churn.event_id: churn.ts_ms}
    assert second.contacts.ingest(churn).duplicate
    second.feed(tick("2026-03-03T02:40:30.001Z"))  # watermark past 22:40 + 4 h
    row = next(r for r in live_view(second.queues, second.queues.latest_ms) if (r["queue_id"], r["channel"]) == qc)
    assert (row["waiting"], second.queues.stale) == (0, {qc: 1})
    assert at("2026-03-03T02:40:00Z") == second.contacts.contacts["lost"].until


@pytest.mark.parametrize("order", ["delete first", "upsert first"])
def test_a_fact_moving_between_two_queues_of_one_partition_survives_either_order(order):
    """Stage one sends a moved fact as a delete on its old route and an upsert on the new one, in two
    messages (one per queue); when both queues live on one stage-two partition they may come in
    either order. The delete names its route and removes only a fact still on it."""
    book = QueueBook(ENGINE)
    fid = "f|c1"
    book.apply(fid, ("frt", "none", "chat", 1_000_000, 900_000))
    moves = [(fid, None, "none"), (fid, ("frt", "Q1", "chat", 1_000_000, 900_000), None)]
    for fact_id, fact, route in (moves if order == "delete first" else moves[::-1]):
        book.apply(fact_id, fact, route)
    assert book.experience.facts == {fid: ("frt", "Q1", "chat", 1_000_000, 900_000)}
    assert [k[0] for k, b in book.experience.buckets.items() if b.facts] == ["Q1"]


def test_a_book_rebuilt_from_the_tables_refuses_what_its_predecessor_expired():
    """After a restart or a rebalance a book is rebuilt from the tables. Facts its predecessor had
    expired (below the expiry floors) and that come again, re-sent, must stay out of the rebuilt book
    as they would have stayed out of the old one: taken in, they recreate expired intervals and publish
    them again as a "version 1" holding only the re-sent facts, a wrong record for every reader."""
    from processor.core.segments import fact_from_json

    start = datetime.fromisoformat("2026-03-03T06:00:00+00:00").timestamp()
    raw = sorted(sorted_events(Simulation(seed=6, start=start, duration_seconds=5 * 3600)), key=lambda e: parse_ts_ms(e["ts"]))
    first = Shell()
    for e in raw:
        first.feed(decode(json.dumps(e)))
    before = {name: dict(rows) for name, rows in first.tables.items()}
    first.expire()
    expired = {name: {k: json.loads(v) for k, v in rows.items() if k not in first.tables[name]}
               for name, rows in before.items()}
    assert {f[0] for f in expired["facts"].values()} >= {"ast", "aleg", "frt", "ttr", "svy"}

    second = Shell(first.tables)
    assert second.queues.stream_ms == 0  # no clock yet: the floors come from the tables
    first.records = []
    for shell in (first, second):
        for fid, fact in expired["facts"].items():
            shell.queues.apply(fid, fact_from_json(fact))  # a re-send: the same fact again
        shell.records += shell.queues.advance()
    for shell in (first, second):
        q = shell.queues
        held = q.facts.keys() | q.experience.facts.keys() | q.agent_book.facts.keys() | q.resolution.facts.keys()
        assert not held & expired["facts"].keys(), ("rebuilt" if shell is second else "uninterrupted", "book took them in")
        assert shell.records == [] and shell.queues.take_dirty()[0] == {}
