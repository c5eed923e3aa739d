"""Property: QueueBook.expire finds what is due through its end-time heaps (issue 19), and housekeeping
never changes a `queue_interval` record, wherever it runs and however it is sliced.

Generated histories of segments (waiting with a staleness instant, then ended at some time, so a
fact's end moves and its older heap entry goes stale), legs re-derived with another end, deletions
and repeats, on two queues with different time zones (so different floors), with stream time jumping
by minutes, hours or days. The same history is fed to books that run `expire()` nowhere, at random
points, or sliced by `limit` into passes that may stop half way and resume later. Every book must
publish byte-identical records, in the same order, and flush the same at the end.
"""
from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.queues import QueueBook, _end_ms
from processor.core.settings import QueueSettings
from tests.coretools import at, check_expiry_changes_no_record, engine, expire_as_drawn

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
RETENTION = 2 * HOUR
START = at("08:00:00")
QUEUES = ("Q1", "Q2")

PROFILE = settings(max_examples=int(os.environ.get("CORE_PROP_EXAMPLES", "100")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

jumps = st.one_of(st.integers(0, 20 * MINUTE), st.integers(0, 3 * HOUR), st.integers(HOUR, 3 * DAY))


@st.composite
def histories(draw):
    """Steps: ("wait", ms) moves stream time; ("fact", fid, fact | None) upserts or deletes a fact."""
    steps, sent, now = [], [], START
    for n in range(draw(st.integers(1, 60))):
        kind = draw(st.sampled_from(("wait", "wait", "seg", "seg", "leg", "end", "again", "delete")))
        if kind == "wait":
            step = draw(jumps)
            now += step
            steps.append(("wait", step))
            continue
        if kind in ("end", "again", "delete"):
            recent = [(fid, fact) for fid, fact in dict(sent).items() if _time(fact) >= now - RETENTION]
            if recent:  # a change to what the retention still holds (stage one dead-letters anything older)
                fid, fact = recent[draw(st.integers(0, len(recent) - 1))]
                if kind == "again":  # the latest version again (a shell re-asserting what it sent)
                    steps.append(("fact", fid, fact))
                elif kind == "delete":
                    steps.append(("fact", fid, None))
                elif fact[0] == "seg" and fact[4] is None:  # the waiting segment ends (its end moves)
                    end = max(fact[3], now - draw(st.integers(0, 60_000)))
                    ended = ("seg", fact[1], fact[2], fact[3], end, draw(st.sampled_from(("answered", "abandoned"))))
                    sent.append((fid, ended))
                    steps.append(("fact", fid, ended))
                elif fact[0] == "leg":  # re-derived with another end
                    leg = ("leg", fact[1], fact[2], max(now - RETENTION, fact[3] + draw(st.integers(-20 * MINUTE, 0))),
                           *fact[4:])
                    sent.append((fid, leg))
                    steps.append(("fact", fid, leg))
            continue
        queue = draw(st.sampled_from(QUEUES))
        ts = now - draw(st.one_of(st.just(0), st.integers(0, 60_000)))  # within the lateness
        fid = f"{kind}|{queue}|{n}"
        if kind == "seg":
            stale = draw(st.one_of(st.none(), st.integers(MINUTE, 2 * DAY)))
            fact: tuple = ("seg", queue, "voice", ts, None, None, None if stale is None else ts + stale)
        else:
            fact = ("leg", queue, "voice", ts, draw(st.integers(1, 900_000)), draw(st.integers(0, 60_000)),
                    draw(st.integers(0, 60_000)))
        sent.append((fid, fact))
        steps.append(("fact", fid, fact))
    return steps


def _time(fact: tuple) -> int:
    """When a fact can expire: a leg's or ended segment's end, a waiting segment's staleness (or start)."""
    if fact[0] == "leg":
        return fact[3]
    if fact[4] is not None:
        return fact[4]
    return fact[6] if fact[6] is not None else fact[3] + 10 * DAY


def replay(steps, sweeps) -> str:
    """Feed the history; sweeps[i] says what to do after step i: None (nothing), 0 (a whole expire pass)
    or k > 0 (one pass sliced by limit=k; it may be left unfinished when k is odd)."""
    book = QueueBook(engine(lateness_s=30, retention_s=RETENTION / 1000,
                            queues={"Q2": QueueSettings(time_zone="Asia/Tokyo")}))
    out: list[dict] = []
    now = START
    for step, sweep in zip(steps, sweeps):
        if step[0] == "wait":
            now += step[1]
        else:
            _, fid, fact = step
            book.apply(fid, fact, None if fact is not None else fid.split("|")[1])
        book.observe(now)
        out += book.advance()
        expire_as_drawn(book.expire, sweep)
        if sweep == 0:
            for f in book.facts.values():  # a whole pass leaves nothing below a floor (none found late, none leaked)
                end = _end_ms(f)
                assert end is None or end >= book._floor.get(f[1], end)
    out += book.flush_all()
    return json.dumps(out, sort_keys=True)


@PROFILE
@given(steps=histories(), data=st.data())
def test_expiry_anywhere_and_sliced_anyhow_changes_no_record(steps, data):
    check_expiry_changes_no_record(replay, steps, data)


def test_a_pass_visits_what_is_due_not_the_state():
    """Thousands of recent facts and one old one: the pass drops the old one; the heaps hold entries
    only for facts that can still expire, and a pass with nothing due pops nothing."""
    book = QueueBook(engine(lateness_s=30, retention_s=RETENTION / 1000))
    book.apply("leg|old", ("leg", "Q1", "voice", START, 60_000, 0, 0))
    later = START + 3 * DAY
    for i in range(2000):
        book.apply(f"leg|{i}", ("leg", "Q1", "voice", later - i, 60_000, 0, 0))
    book.observe(later)
    book.advance()
    assert book.expire() == 1 and "leg|old" not in book.facts and len(book.facts) == 2000
    assert sum(map(len, book._end_heaps.values())) == 2000
    assert book.expire() == 0
