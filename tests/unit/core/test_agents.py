"""`agent_interval` records from the whole pipeline, numbers by hand.

Time by state from agent.state_changed (each state lasts until the next change); staffed = every
state but offline; handling = busy + acw; utilization = handling / staffed; occupancy = handling /
(handling + available); handled / AHT from the agent's legs ended in the interval (talk + hold + ACW).
15-minute intervals, lateness 30 s, retention 2 h, UTC.
"""
from __future__ import annotations

import dataclasses

import pytest

from processor.core.agents import ms_by_state
from processor.decode import load_rollup_validators
from processor.core.pipeline import Pipeline
from tests.coretools import Contact, Run, agent_state, at, engine, run, tick

K = "agent_interval"


def a1_day() -> list:
    return [
        agent_state("a1", "available", "10:00:00"),
        agent_state("a1", "away", "10:03:00"),
        agent_state("a1", "busy", "10:05:00"),
        agent_state("a1", "acw", "10:10:00"),
        agent_state("a1", "available", "10:12:00"),
        agent_state("a1", "away", "10:20:00"),
        agent_state("a1", "offline", "10:25:00"),
    ]


def a1_leg() -> list:
    # answered by a1 at 10:05, talk 300 s, ACW 10:10 -> 10:12 = 120 s: handle 420 s, ends 10:12
    return Contact("c1", created="10:04:50", agent="a1").queued("Q1", "10:04:50").answered("Q1", "10:05:00") \
        .wrapup("10:10:00", "10:12:00").events


def in_order(events):
    return sorted(events, key=lambda e: e.ts_ms)


def key(agent: str, start: str) -> tuple:
    return (K, agent, f"2026-11-23T{start}.000Z")


def test_ms_by_state():
    tl = [(at("10:00:00"), "x1", "available"), (at("10:05:00"), "x2", "busy")]
    assert ms_by_state(tl, at("10:00:00"), at("10:15:00")) == {"available": 300_000, "busy": 600_000}
    assert ms_by_state(tl, at("09:45:00"), at("10:00:00")) == {}          # before the first change: unknown
    assert ms_by_state(tl, at("10:15:00"), at("10:30:00")) == {"busy": 900_000}


def test_seconds_by_state_utilization_occupancy_and_aht():
    r = run(in_order(a1_day() + a1_leg()))
    latest = r.latest_of(K)
    first = latest[key("a1", "10:00:00")]
    # available 10:00-10:03 + 10:12-10:15 = 360 s, away 10:03-10:05 = 120, busy 300, acw 120
    assert first["seconds_by_state"] == {"available": 360.0, "busy": 300.0, "acw": 120.0, "away": 120.0, "offline": 0.0}
    assert first["utilization"] == pytest.approx(420 / 900)          # (300 + 120) / 900 staffed
    assert first["occupancy"] == pytest.approx(420 / (420 + 360))    # handling / (handling + available)
    assert (first["handled"], first["aht_seconds"]) == (1, 420.0)
    second = latest[key("a1", "10:15:00")]
    # available 10:15-10:20, away 10:20-10:25, offline 10:25-10:30
    assert second["seconds_by_state"] == {"available": 300.0, "busy": 0.0, "acw": 0.0, "away": 300.0, "offline": 300.0}
    assert (second["utilization"], second["occupancy"], second["handled"], second["aht_seconds"]) == (0.0, 0.0, 0, None)
    # offline from 10:25 on: no record for 10:30 or later
    assert set(latest) == {key("a1", "10:00:00"), key("a1", "10:15:00")}
    validate = load_rollup_validators()[K]
    for rec in latest.values():
        validate(rec)


def test_time_before_the_first_change_counts_nowhere_and_steady_agents_get_every_interval():
    r = run([agent_state("a2", "available", "10:07:00"), tick("10:46:00")], flush=False)
    recs = {x["interval_start"][11:16]: x for x in r.of(K)}
    # 10:45 is not closed yet at stream 10:46 (its end + lateness is 11:00:30)
    assert sorted(recs) == ["10:00", "10:15", "10:30"]
    assert recs["10:00"]["seconds_by_state"]["available"] == 480.0    # 10:07 -> 10:15
    assert sum(recs["10:00"]["seconds_by_state"].values()) == 480.0
    assert recs["10:15"]["seconds_by_state"]["available"] == 900.0
    assert (recs["10:30"]["utilization"], recs["10:30"]["occupancy"]) == (0.0, 0.0)


def test_version_1_after_the_lateness_then_a_late_change_corrects_it():
    evs = in_order(a1_day()[:5] + a1_leg())
    r = run(evs + [tick("10:15:29.999")], flush=False)
    assert r.of(K) == []
    recs, _ = r.pipeline.feed(tick("10:15:30"))
    assert [(x["interval_start"][11:16], x["version"]) for x in recs if x["kind"] == K] == [("10:00", 1)]
    # away at 10:01 arrives at stream time 10:16: available 10:00-10:01 + 10:12-10:15 = 240 s, away 10:01-10:05 = 240 s
    late = agent_state("a1", "away", "10:01:00")
    recs, dead = r.pipeline.feed(late)
    assert dead == []
    fixed = [x for x in recs if x["kind"] == K]
    assert [(x["version"], x["seconds_by_state"]["available"], x["seconds_by_state"]["away"]) for x in fixed] == [
        (2, 240.0, 240.0)]
    assert fixed[0]["occupancy"] == pytest.approx(420 / (420 + 240))
    # the same event again (a duplicate) changes nothing
    assert r.pipeline.feed(late) == ([], [])


def test_an_older_state_change_still_fills_the_timeline_but_not_the_live_presence():
    r = run([agent_state("a3", "busy", "10:10:00"), agent_state("a3", "available", "10:05:00")])
    rec = r.latest_of(K)[key("a3", "10:00:00")]
    assert rec["seconds_by_state"]["available"] == 300.0 and rec["seconds_by_state"]["busy"] == 300.0
    assert r.pipeline.queues.agents_by_state("Q1") == {"busy": 1}   # the live gauge keeps the latest state


def test_expiry_keeps_the_state_at_the_floor_and_republishes_nothing():
    r = run([agent_state("a2", "available", "10:07:00"), tick("13:00:00")], flush=False)
    p = r.pipeline
    before = {(x["interval_start"], x["version"]) for x in r.of(K)}
    p.expire()   # floor: 13:00 - 2 h = 11:00
    book = p.queues.agent_book
    # the agent's last change (below the floor) is kept as its state there; nothing newer is held
    assert "a2" not in book.timelines and book.bases["a2"][::2] == (at("10:07:00"), "available")
    assert [f[0] for f in book.facts.values()] == ["ast"]
    recs, _ = p.feed(tick("13:30:00"))
    new = [(x["interval_start"][11:16], x["version"], x["seconds_by_state"]["available"]) for x in recs if x["kind"] == K]
    # 12:45 and 13:00 close at 13:30 (end + 30 s lateness <= 13:30); both a full 900 s available
    assert new == [("12:45", 1, 900.0), ("13:00", 1, 900.0)]
    assert all(v == 1 for _, v in before)


def test_scores_per_agent_follow_the_agent_the_customer_last_dealt_with():
    """A survey rates the agent of the latest answer or non-automated reply before it; QA names its agent.

    c1: answered by a1 at 10:05, transferred at 10:08 to Q2, answered by a2 at 10:09; csat 5/5 at 10:20
        -> a2 (top-two box), QA 80 for a1 at 10:21 -> a1.
    c2 (chat): automated reply at 10:01 (not an agent the customer dealt with), a3 replies at 10:02,
        a4 at 10:04; nps 10/10 at 10:06 -> a4 (promoter: +100), ces 3/7 at 10:07 -> a4 (not >= 5).
    c3: a survey with no agent before it (abandoned) counts for the queue only.
    A survey arriving three hours after the contact settled (its in-progress state expired at the
    two-hour retention, only the profile is kept) is still credited to a2.
    """
    c1 = Contact("c1", created="10:04:50", agent="a1").queued("Q1", "10:04:50").answered("Q1", "10:05:00") \
        .transferred("Q2", "10:08:00").queued("Q2", "10:08:00").answered("Q2", "10:09:00", agent="a2")
    c1.agent = "a2"
    c1.wrapup("10:12:00", "10:13:00").survey("csat", 5, 5, "10:20:00")
    c1.agent = "a1"
    c1.qa(80, "10:21:00")
    c2 = Contact("c2", "chat", "10:00:00", agent="a3").queued("Q1", "10:00:00").replied("10:01:00", automated=True) \
        .answered("Q1", "10:02:00").replied("10:02:00")
    c2.agent = "a4"
    c2.replied("10:04:00").survey("nps", 10, 10, "10:06:00").survey("ces", 3, 7, "10:07:00")
    c3 = Contact("c3", created="10:00:00").queued("Q1", "10:00:00").abandoned("Q1", "10:00:30") \
        .survey("csat", 1, 5, "10:10:00")
    late = Contact("c1", created=None)
    late.survey("csat", 4, 5, "13:30:00")
    pipe = Pipeline(engine())
    records = []
    for e in sorted(c1.events + c2.events + c3.events, key=lambda e: e.ts_ms) + [tick("13:29:00")]:
        records += pipe.feed(e)[0]
    pipe.expire()
    assert "c1" in pipe.contacts.profiles and "c1" not in pipe.contacts.contacts  # only the profile is kept
    for e in late.events + [tick("14:00:00")]:
        records += pipe.feed(e)[0]
    records += pipe.finish()
    r = Run(pipe, [], [], records)
    latest = r.latest_of(K)
    a2 = latest[key("a2", "10:15:00")]
    assert a2["csat"] == {"value": 1.0, "count": 1} and a2["qa_score"] == {"value": None, "count": 0}
    assert latest[key("a2", "13:30:00")]["csat"] == {"value": 1.0, "count": 1}   # 4 of 5: top two boxes
    a1 = latest[key("a1", "10:15:00")]
    assert a1["qa_score"] == {"value": 80.0, "count": 1} and a1["csat"] == {"value": None, "count": 0}
    a4 = latest[key("a4", "10:00:00")]
    assert a4["nps"] == {"value": 100.0, "count": 1} and a4["ces"] == {"value": 0.0, "count": 1}
    assert key("a3", "10:00:00") not in latest   # a3 replied before a4: no score, no leg, no state -> no record
    # per queue, every answer counts (c3's survey included)
    exp = r.latest_of("experience_interval")[("experience_interval", "Q1", "voice", "2026-11-23T10:00:00.000Z")]
    assert exp["csat"] == {"value": 0.0, "count": 1}
    validate = load_rollup_validators()[K]
    for rec in r.of(K):
        validate(rec)


def test_a_repeated_state_change_id_changes_nothing_whatever_it_says_even_after_a_restart():
    """busy at 10:05 (id s2) re-sent later as 'away', and once more after stage one was rebuilt from its table."""
    import json

    from processor.core.contacts import ID_SEP, AgentState

    events = in_order(a1_day())
    busy = next(e for e in events if e.state == "busy")
    forged = dataclasses.replace(busy, state="away")
    clean = run(events + [tick("11:00:00")]).latest_of(K)
    pipe = Pipeline(engine())
    records = []
    for e in events[:4] + [forged] + events[4:]:
        recs, _ = pipe.feed(e)
        records += recs
    assert pipe.counts.duplicates == 1
    # stage one rebuilt from its persisted state (what a restarted worker does), then the forgery again
    # (the agent's state and, one table key each, its remembered event ids: what the changelogs hold)
    state = pipe.contacts.agents["a1"].to_state()
    ids = {f"a1{ID_SEP}{eid}": [ts, st] for eid, (ts, st) in pipe.contacts.agents["a1"].recent.items()}
    pipe.contacts.agents["a1"] = AgentState.from_state(json.loads(json.dumps(state)))
    assert pipe.contacts.agents["a1"].recent == {}
    for key, value in ids.items():
        pipe.contacts.restore_agent_id(key, json.loads(json.dumps(value)))
    records += pipe.feed(forged)[0] + pipe.feed(tick("11:00:00"))[0] + pipe.finish()
    assert pipe.counts.duplicates == 2
    assert Run(pipe, [], [], records).latest_of(K) == clean


def _timeline_matches_facts(book) -> None:
    """Every timeline entry (and base) is a held presence fact with the same time and state, and the other
    way round; each agent's base is older than its held changes."""
    entries = [(fid, ts, state) for tl in book.timelines.values() for s in tl.starts for ts, fid, state in tl.cells[s]]
    entries += [(fid, ts, state) for ts, fid, state in book.bases.values()]
    assert len(entries) == len({fid for fid, _, _ in entries})  # one entry per fact
    assert sorted(entries) == sorted((fid, f[2], f[3]) for fid, f in book.facts.items() if f[0] == "ast")
    for agent, tl in book.timelines.items():
        assert tl.starts == sorted(tl.cells) and all(tl.cells[s] == sorted(tl.cells[s]) for s in tl.starts)
        if agent in book.bases:
            assert book.bases[agent][0] < tl.starts[0]


def _rebuilt(book, table: dict) -> object:
    """A new book from what the shell persists: the facts table and the book's floor row (published table)."""
    from processor.core.agents import FLOOR_SUFFIX, AgentBook

    rebuilt = AgentBook(engine())
    for fid, fact in table.items():
        if fid.endswith(FLOOR_SUFFIX):
            rebuilt.restore_floor(fid[:-len(FLOOR_SUFFIX)], fact)
    for fid, fact in table.items():
        if not fid.endswith(FLOOR_SUFFIX):
            rebuilt.apply(fid, fact)
    return rebuilt


def _persist(book, table: dict) -> None:
    for fid in book.dirty_facts:
        table[fid] = book.facts.get(fid)
    book.dirty_facts.clear()
    table.update(book.take_floor_row())
    for fid in [fid for fid, f in table.items() if f is None]:
        del table[fid]


def test_a_book_rebuilt_from_its_table_keeps_its_floor_and_one_state_per_agent():
    """Seen in a steady-state soak: after a rebalance the rebuilt book took a re-sent change older than
    its floor, the next expiry at the same floor made a second carry, and the one after crashed the
    worker (KeyError in AgentBook.expire). The floor now has its own row (published table)."""
    from processor.core.agents import AgentBook

    hour = 3_600_000
    book = AgentBook(engine())
    old, later = ("ast", "a1", 1 * hour, "busy"), ("ast", "a1", 3 * hour + 60_000, "available")
    book.apply("as|a1|e0", ("ast", "a1", 0, "away"))
    book.apply("as|a1|e1", old)
    book.apply("as|a1|e2", later)
    book.expire(5 * hour)  # retention 2 h: floor 3:00; e1 is the state there, e0 goes
    assert book.bases["a1"] == (1 * hour, "as|a1|e1", "busy") and "as|a1|e0" not in book.facts
    table: dict = {}
    _persist(book, table)
    assert table["a1|agtfloor"] == [3 * hour]

    rebuilt = _rebuilt(book, table)
    rebuilt.apply("as|a1|e0", ("ast", "a1", 0, "away"))  # re-sent after the crash: older than the floor, so nothing
    assert "as|a1|e0" not in rebuilt.facts
    rebuilt.expire(5 * hour)  # the same floor again
    rebuilt.expire(6 * hour)
    rebuilt.expire(9 * hour)  # past e2 too: e2 is now the state at the floor
    _timeline_matches_facts(rebuilt)
    assert rebuilt.bases["a1"] == (3 * hour + 60_000, "as|a1|e2", "available") and not rebuilt.timelines
    assert set(rebuilt.facts) == {"as|a1|e2"}


def test_a_table_written_with_carries_still_teaches_the_floor():
    """Tables written before docs/agents.md hold a "carry" (event id empty) at the floor instead of a floor row."""
    from processor.core.agents import AgentBook

    hour = 3_600_000
    rebuilt = AgentBook(engine())
    rebuilt.apply("as|a1|", ("ast", "a1", 3 * hour, "busy"))
    rebuilt.apply("as|a1|e1", ("ast", "a1", 1 * hour, "busy"))  # older than that floor: refused
    assert set(rebuilt.facts) == {"as|a1|"}


def test_presence_timelines_stay_consistent_through_repeats_rebuilds_and_expiry():
    """Random presence changes, repeats of earlier ones, rebuilds from the persisted facts and expiry."""
    import random

    from processor.core.agents import AgentBook

    for seed in range(25):
        rnd = random.Random(seed)
        book, table, sent, now = AgentBook(engine()), {}, {}, 10 * 86_400_000
        for step in range(800):
            r = rnd.random()
            if r < 0.55:
                agent = f"a{rnd.randrange(3)}"
                fid = f"as|{agent}|e{step}"
                sent[fid] = ("ast", agent, now - rnd.randrange(3 * 3_600_000), rnd.choice(["available", "busy", "offline"]))
                book.apply(fid, sent[fid])
            elif r < 0.7 and sent:
                fid = rnd.choice(list(sent))
                book.apply(fid, sent[fid])  # a repeat, maybe of a change expired since
            elif r < 0.8:
                now += rnd.randrange(3 * 3_600_000)
                book.expire(now)
            else:
                _persist(book, table)  # as the worker's tables
                if r < 0.85:
                    book = _rebuilt(book, table)  # a restart: rebuilt from the tables
            book.advance(now)
            _timeline_matches_facts(book)
