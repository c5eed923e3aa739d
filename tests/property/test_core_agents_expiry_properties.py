"""Property: housekeeping never changes an `agent_interval` figure (issue 25), however it is sliced (issue 19).

Generated histories of a few agents: state changes (offline included), legs, surveys and QA scores,
with stream time jumping by minutes, hours or days (agents idle or offline for hours and days), late
facts within the retention, repeats of facts sent long ago (a shell re-asserting what it sent), and
legs re-derived with another end or handle. The same history is fed, as the pipeline feeds stage two
(facts, then the clock, then advance), to books that run `expire()` nowhere, at random points, or
sliced by `limit` into passes that may stop half way and resume at a later point. Every book must
publish byte-identical records, in the same order, and flush the same at the end.
"""
from __future__ import annotations

import json
import os
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.agents import AgentBook
from tests.coretools import at, check_expiry_changes_no_record, engine, expire_as_drawn

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
RETENTION = 2 * HOUR
START = at("08:00:00")
AGENTS = ("a1", "a2", "a3")
STATES = ("available", "busy", "acw", "away", "offline")

PROFILE = settings(max_examples=int(os.environ.get("CORE_PROP_EXAMPLES", "100")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

jumps = st.one_of(st.integers(0, 20 * MINUTE), st.integers(0, 3 * HOUR), st.integers(HOUR, 3 * DAY))


@st.composite
def histories(draw):
    """Steps: ("wait", ms) moves stream time; ("fact", fid, fact) at most the retention before it;
    ("again", index) re-sends an earlier fact as it was; ("move", index, ms) re-derives a leg."""
    steps, sent, now = [], [], START
    for n in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(("wait", "ast", "ast", "ast", "aleg", "asvy", "aqa", "again", "move")))
        if kind == "wait":
            step = draw(jumps)
            now += step
            steps.append(("wait", step))
            continue
        if kind == "again" and sent:
            steps.append(("again", draw(st.integers(0, len(sent) - 1))))
            continue
        if kind == "move" and sent:
            i = draw(st.integers(0, len(sent) - 1))
            fid, fact = sent[i]
            if fact[0] == "aleg" and fact[2] >= now - RETENTION:
                end = max(now - RETENTION, fact[2] + draw(st.integers(-20 * MINUTE, 20 * MINUTE)))
                steps.append(("fact", fid, ("aleg", fact[1], min(end, now), draw(st.integers(1, 900_000)))))
            continue
        agent = draw(st.sampled_from(AGENTS))
        # mostly in order; sometimes late, up to the retention (stage one dead-letters anything older)
        late = draw(st.one_of(st.just(0), st.just(0), st.integers(0, 60_000), st.integers(0, RETENTION)))
        ts = now - late
        fid = f"{kind}|{agent}|{n}"
        if kind == "ast":
            fact: tuple = ("ast", agent, ts, draw(st.sampled_from(STATES)))
        elif kind == "aleg":
            fact = ("aleg", agent, ts, draw(st.integers(1, 900_000)))
        elif kind == "asvy":
            fact = ("asvy", agent, ts, draw(st.sampled_from(("csat", "ces", "nps"))), float(draw(st.integers(1, 5))), 5.0)
        else:
            fact = ("aqa", agent, ts, float(draw(st.integers(0, 100))))
        sent.append((fid, fact))
        steps.append(("fact", fid, fact))
    return steps


def replay(steps, sweeps) -> str:
    """Feed the history; sweeps[i] says what to do after step i: None (nothing), 0 (a whole expire pass)
    or k > 0 (one pass sliced by limit=k; it may be left unfinished when k is odd)."""
    book = AgentBook(engine())
    sent: list = []
    out: list[dict] = []
    now = START
    for step, sweep in zip(steps, sweeps):
        if step[0] == "wait":
            now += step[1]
        elif step[0] == "again":
            fid, fact = sent[step[1]]
            book.apply(fid, fact)
        else:
            _, fid, fact = step
            if fid.startswith("aleg") and any(f == fid for f, _ in sent):
                sent = [(f, fact if f == fid else x) for f, x in sent]
            else:
                sent.append((fid, fact))
            book.apply(fid, fact)
        out += book.advance(now)
        expire_as_drawn(partial(book.expire, now), sweep)
    out += book.flush(now)
    return json.dumps(out, sort_keys=True)


@PROFILE
@given(steps=histories(), data=st.data())
def test_expiry_anywhere_and_sliced_anyhow_changes_no_record(steps, data):
    check_expiry_changes_no_record(replay, steps, data)


def test_an_agent_offline_for_days_is_one_entry_and_still_counts():
    """The bound: an agent with nothing within the retention is its last change (base) and that fact."""
    book = AgentBook(engine())
    book.apply("as|a1|e1", ("ast", "a1", START, "available"))
    book.apply("as|a1|e2", ("ast", "a1", START + 5 * MINUTE, "offline"))
    book.apply("al|a1|e3", ("aleg", "a1", START + 4 * MINUTE, 60_000))
    out = book.advance(START + 30 * MINUTE)
    later = START + 3 * DAY
    book.advance(later)
    assert book.expire(later) > 0
    assert book.expire(later) == 0   # nothing more is due
    assert not book.timelines and not book.legs and not book.publisher.published and not book.publisher.pending
    assert book.bases == {"a1": (START + 5 * MINUTE, "as|a1|e2", "offline")} and list(book.facts) == ["as|a1|e2"]
    book.apply("aq|a1|e4", ("aqa", "a1", later + 7 * MINUTE, 80.0))   # a QA score three days later
    out = book.advance(later + 20 * MINUTE)
    assert [(r["seconds_by_state"]["offline"], r["qa_score"]["value"]) for r in out] == [(900.0, 80.0)]
