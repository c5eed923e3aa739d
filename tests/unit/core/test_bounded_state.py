"""Memory stays bounded while contacts stay open for days: after the recontact window and the
longest open contact have passed, the books hold as much on day 6 as on day 4 (the live set:
open contacts, profiles of the last W, facts of the retention), not the history.

Each hour: 20 voice calls settled within minutes, 4 tickets that stay open for 36 hours before
they are resolved (and surveyed), a churn now and then, 6 agents changing state. W = 1 day,
retention 2 h, post-contact retention horizons of 1 and 2 days (instead of 30/60/90, whose
state is kept accordingly longer); housekeeping once an hour, as the shell's timer would.
"""
from __future__ import annotations

import dataclasses

from processor.core.pipeline import Pipeline
from tests.coretools import Contact, agent_state, churned, engine

HOUR = 3_600_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR)  # a UTC midnight in 2026


def _hour(h: int) -> list:
    base = T0 + h * HOUR
    evs = []
    for i in range(20):
        t = base + i * 170_000
        c = Contact(f"call-{h}-{i}", "voice", t, customer_id=f"u{(h * 20 + i) % 900}", agent=f"a{i % 6}",
                    issue=f"i{i % 3}")
        c.queued("Q1", t).answered("Q1", t + 15_000).wrapup(t + 120_000, t + 150_000)
        evs += c.events
    for i in range(4):
        t = base + 600_000 + i * 60_000
        k = Contact(f"tkt-{h}-{i}", "ticket", t, customer_id=f"u{(h * 4 + i) % 300}", agent="a5", issue="t")
        k.queued("T1", t).answered("T1", t + 60_000).replied(t + 120_000) \
            .wrapup(t + 180_000, t + 200_000)
        evs += k.events
        r = Contact(f"tkt-{h}-{i}", channel=None, agent="a5")  # 36 hours later: resolved, then a survey
        r.resolved(t + 36 * HOUR).survey("csat", 4, 5, t + 36 * HOUR + 60_000)
        evs += r.events
    if h % 5 == 0:
        evs.append(churned(f"u{h % 900}", base + 1_800_000))
    for a in range(6):
        evs.append(agent_state(f"a{a}", ("available", "busy", "acw", "away")[(h + a) % 4], base + a * 1000,
                               queues=("Q1", "T1")))
    return evs


def _size(p: Pipeline) -> dict[str, int]:
    q = p.queues
    return {
        "contacts": len(p.contacts.contacts), "profiles": len(p.contacts.profiles), "agents": len(p.contacts.agents),
        "queue facts": len(q.facts), "experience facts": len(q.experience.facts), "agent facts": len(q.agent_book.facts),
        "resolution facts": len(q.resolution.facts), "journey facts": len(p.journeys.facts),
        "customers": len(p.journeys.customers),
        # the expiry indexes by day end: bounded with what they index (stale entries go with their day)
        "resolution ids by day end": sum(len(index) for index in q.resolution._by_end.values()),
        "customers by day end": sum(len(index) for index in p.journeys._by_end.values()),
    }


def _nothing_left_below_the_floors(p: Pipeline) -> None:
    """What expiry visits through its day-end indexes is all there is to drop: no contribution at or
    below a floor stays behind, and no customer is left empty."""
    j, r = p.journeys, p.queues.resolution
    for cust in j.customers.values():
        assert not cust.empty()
        assert all(c[4] > j._res_floor for c in cust.contrib.values())
        assert all(g[3] > j._ret_floor for g in cust.ret_contrib)
    assert all(f[4] > (r._res_floor if f[0] == "res" else r._ret_floor) for f in r.facts.values())


def test_state_is_flat_once_the_window_and_the_open_contacts_have_passed():
    p = Pipeline(dataclasses.replace(engine(window_days=1), retention_horizons_days=(1, 2)))
    events = sorted((e for h in range(6 * 24) for e in _hour(h)), key=lambda e: (e.ts_ms, e.event_id))
    sizes: dict[int, dict[str, int]] = {}
    next_hour = T0 + HOUR
    for e in events:
        while e.ts_ms >= next_hour:  # the shell's housekeeping timer, once an hour of stream time
            p.expire()
            _nothing_left_below_the_floors(p)
            day, hour = divmod((next_hour - T0) // HOUR, 24)
            if hour == 0:
                sizes[day] = _size(p)
            next_hour += HOUR
        _recs, dead = p.feed(e)
        assert dead == []
    four, six = sizes[4], sizes[6] if 6 in sizes else _size(p)
    print("\nday 4:", four, "\nday 6:", six)
    # open tickets are kept (36 h of them), calls only for the retention, profiles for W
    assert four["contacts"] <= 3 * 24 and four["profiles"] > 0
    for name, n in six.items():
        assert n <= max(1.1 * four[name], four[name] + 5), (name, four[name], n)
    assert sum(six.values()) <= 1.05 * sum(four.values())
