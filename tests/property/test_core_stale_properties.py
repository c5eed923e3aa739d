"""Stale contacts are decided by event time alone (segments.py, contacts.py, queues.py).

Generated contacts of three channels (voice, email, and `unknown`: no contact.created) end normally,
lose their end event (waiting, or in progress), end after a silence around the staleness limit, or
have their end delivered late (after the contact went stale, within the retention). Properties:
  (a) housekeeping (ContactBook / QueueBook / JourneyBook expire) run after any events, or after
      every event, changes nothing: the same records in the same order, the same dead letters, the
      same queue depth, longest wait and stale counts as a run without housekeeping;
  (b) the same input spread over two input partitions, as the streaming shell runs it (a stage-one
      book per partition, stage two's clock the minimum of the two, idle at the end), ends with the
      same queue depth, longest wait, stale counts and latest queue_interval records as one pipeline,
      whatever the arrival order within the lateness;
  (c) state is freed: once stream time is past every limit plus the retention, no contact is left
      in progress and no waiting segment is held.
"""
from __future__ import annotations

import os
import random
import zlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processor.core.contacts import ContactBook
from processor.core.events import Event, parse_ts_ms
from processor.core.live import live_view
from processor.core.pipeline import Pipeline
from processor.core.queues import QueueBook
from processor.core.settings import DEFAULT_STALE_AFTER_MS, EngineSettings, QueueSettings

BASE = parse_ts_ms("2026-11-23T06:00:00Z")
MIN = 60_000
LATENESS = 30_000
RETENTION = 90 * MIN
LIMITS = {"voice": 30 * MIN, "email": 2 * 60 * MIN, "unknown": 60 * MIN}
ENGINE = EngineSettings(interval_minutes=15, lateness_ms=LATENESS, retention_ms=RETENTION,
                        default_queue=QueueSettings(stale_after_ms=tuple((c, LIMITS.get(c, ms))
                                                                         for c, ms in DEFAULT_STALE_AFTER_MS)))
PROFILE = settings(max_examples=int(os.environ.get("CORE_PROP_EXAMPLES", "100")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
OUTCOMES = ("answered", "abandoned", "lost", "lost_leg", "silence", "late_end", "replies")
LATEST_START = 6 * 60 * MIN  # every contact starts within BASE + 6 h
# What is open goes stale at the latest at latest start + 1 s (queued) + 2 x the longest limit: an answer
# exactly at the limit still pairs ("silence"), then its leg is open for the limit again. It is freed once
# stream time minus the retention is past that instant (an end at it is not too_late before), so the
# ticks go on to beyond it; the last one at TICKS_END exactly.
TICKS_END = BASE + LATEST_START + 1_000 + 2 * max(LIMITS.values()) + RETENTION + 10 * MIN


def ticks() -> list[Event]:
    """Traffic that moves stream time on to TICKS_END: contacts that only resolve, every 20 minutes."""
    times = [*range(BASE, TICKS_END, 20 * MIN), TICKS_END]
    return [Event(f"tick{i}", "contact.resolved", t, f"tick{i % 3}") for i, t in enumerate(times)]


@st.composite
def contact(draw, n: int) -> tuple[list[Event], set[str]]:
    """One contact's events, and the ids of those to deliver late (after the contact went stale)."""
    cid = f"c{n}"
    channel = draw(st.sampled_from(["voice", "email", "unknown"]))
    limit = LIMITS[channel]
    queue = draw(st.sampled_from(["Q1", "Q2"]))
    t0 = BASE + draw(st.integers(0, LATEST_START))
    k = iter(range(100))

    def e(type_: str, ts: int, **f) -> Event:
        return Event(f"{cid}-{next(k)}", type_, ts, cid, **f)
    out = [] if channel == "unknown" else [e("contact.created", t0, channel=channel, customer_id=f"u{n}")]
    out.append(e("contact.queued", t0 + 1_000, queue_id=queue))
    q = t0 + 1_000
    outcome = draw(st.sampled_from(OUTCOMES))
    late: set[str] = set()
    if outcome in ("answered", "late_end", "replies", "lost_leg"):
        wait = draw(st.integers(0, 10 * MIN))
        if outcome == "replies":  # the customer writes while waiting: each message renews the limit
            t = q
            for _ in range(draw(st.integers(1, 3))):
                t += draw(st.integers(limit // 2, limit))
                out.append(e("message.customer_replied", t))
            wait = t - q + draw(st.integers(0, limit - 1))
        elif outcome == "late_end":  # answered within the limit, delivered after it went stale
            wait = limit - draw(st.integers(0, 5 * MIN))
        out.append(e("contact.answered", q + wait, queue_id=queue, agent_id="a1"))
        if outcome == "late_end":
            late.add(out[-1].event_id)
        if outcome != "lost_leg":
            out.append(e("contact.wrapup_started", q + wait + draw(st.integers(1_000, 20 * MIN)), agent_id="a1"))
            out.append(e("contact.wrapup_ended", out[-1].ts_ms + 30_000, agent_id="a1"))
            if outcome == "late_end":
                late |= {out[-2].event_id, out[-1].event_id}
    elif outcome == "abandoned":
        out.append(e("contact.abandoned", q + draw(st.integers(0, 5 * MIN)), queue_id=queue))
    elif outcome == "silence":  # an end after a silence around the limit: an orphan past it
        gap = limit + draw(st.sampled_from([-1, 0, 1, 10 * MIN]))
        out.append(e(draw(st.sampled_from(["contact.answered", "contact.abandoned"])), q + gap, queue_id=queue,
                     agent_id="a1"))
    return out, late                                            # "lost": nothing after the queued


@st.composite
def scenarios(draw) -> tuple[list[Event], set[str]]:
    events, late = [], set()
    for n in range(draw(st.integers(1, 12))):
        evs, lt = draw(contact(n))
        events += evs
        late |= lt
    events += ticks()
    return events, late


def arrival(events: list[Event], late: set[str], seed: int, late_by: int) -> list[Event]:
    """Arrival order: event time plus a delay of up to the lateness (late ones: up to `late_by` more)."""
    rng = random.Random(seed)
    keyed = [(e.ts_ms + rng.randint(0, LATENESS) + (late_by if e.event_id in late else 0), i, e)
             for i, e in enumerate(events)]
    return [e for _, _, e in sorted(keyed)]


def gauges(book: QueueBook) -> tuple:
    rows = [(r["queue_id"], r["channel"], r["waiting"], r["longest_wait_seconds"])
            for r in live_view(book, book.latest_ms) if r["waiting"]]
    return sorted(rows), dict(sorted(book.stale.items()))


def run_pipeline(events: list[Event], housekeeping) -> tuple:
    p = Pipeline(ENGINE)
    records, dead = [], []
    for n, e in enumerate(events):
        recs, dls = p.feed(e)
        records += recs
        dead += [(d.event.event_id, d.reason) for d in dls]
        if housekeeping(n):
            p.expire()
    records += p.finish(flush=False)
    return records, dead, gauges(p.queues), p


# An email answered exactly at its limit (13:50, queued 11:50): its leg goes stale at 15:50, which the
# ticks used to reach plus the retention exactly (17:20), not beyond; an end at 15:50 was not too late yet.
LEG_AT_THE_LIMIT = [Event("c0-0", "contact.created", BASE + 349 * MIN + 59_000, "c0", channel="email", customer_id="u0"),
                    Event("c0-1", "contact.queued", BASE + 350 * MIN, "c0", queue_id="Q1"),
                    Event("c0-2", "contact.answered", BASE + 470 * MIN, "c0", queue_id="Q1", agent_id="a1")]


@PROFILE
@given(scenario=scenarios(), seed=st.integers(0, 2**32 - 1), every=st.sets(st.integers(0, 400), max_size=40))
@example(scenario=(LEG_AT_THE_LIMIT + ticks(), set()), seed=0, every=set())
def test_a_housekeeping_at_any_point_changes_nothing(scenario, seed, every):
    events, late = scenario
    order = arrival(events, late, seed, late_by=60 * MIN)  # late ends: after the limit, within the retention
    plain = run_pipeline(order, lambda n: False)
    some = run_pipeline(order, lambda n: n in every)
    always = run_pipeline(order, lambda n: True)
    assert plain[:3] == some[:3] == always[:3]
    # (c) with housekeeping, what went stale is freed: nothing is left in progress or waiting
    p = always[3]
    assert all(st.until is None for st in p.contacts.contacts.values())
    assert all(not opened for opened in p.queues.open.values()) and not p.queues._stale_at
    assert not [f for f in p.queues.facts.values() if f[0] == "seg" and f[4] is None and f[6] is not None
                and f[6] < p.queues.stream_ms - RETENTION - 24 * 60 * MIN]


def run_partitions(events: list[Event]) -> tuple:
    """Two input partitions, as the worker runs them: stage one per partition, stage two's watermark the
    slower one's stream time (both declared idle at the end, as the tick timer does)."""
    books = [ContactBook(ENGINE), ContactBook(ENGINE)]
    stage_two = QueueBook(ENGINE)
    stage_two.expected_sources = 2
    records = []
    for e in events:
        part = zlib.crc32(e.key.encode()) % 2
        res = books[part].ingest(e)
        stage_two.apply_all(res.deltas)
        stage_two.apply_all(res.agent_deltas)
        stage_two.observe(books[part].stream_ms, part)
        records += stage_two.advance()
    for part, book in enumerate(books):
        stage_two.observe(book.stream_ms, part, idle=True)
    records += stage_two.advance()
    return records, gauges(stage_two)


def latest_queue_intervals(records: list[dict]) -> dict:
    best: dict = {}
    for r in records:
        if r["kind"] == "queue_interval":
            k = (r["queue_id"], r["channel"], r["interval_start"])
            if k not in best or r["version"] > best[k]["version"]:
                best[k] = r
    return {k: {f: v for f, v in r.items() if f != "version"} for k, r in best.items()}


@PROFILE
@given(scenario=scenarios(), seed=st.integers(0, 2**32 - 1))
def test_b_two_partitions_end_with_the_figures_of_one_pipeline(scenario, seed):
    events, _ = scenario
    order = arrival(events, set(), seed, late_by=0)  # within the lateness only
    records, _, one_gauges, _ = run_pipeline(order, lambda n: False)
    streamed, two_gauges = run_partitions(order)
    assert two_gauges == one_gauges
    assert latest_queue_intervals(streamed) == latest_queue_intervals(records)
