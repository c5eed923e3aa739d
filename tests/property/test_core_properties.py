"""Property-based tests of the KPI core against a deliberately naive reference written here.

Generated contact histories (queue segments ending answered / abandoned / flowed out / still
waiting, holds, transfers between queues, wrap-up, legs left unfinished) are turned into events.
The reference walks each contact's events in their true lifecycle order and recomputes every
`queue_interval` figure by brute force; the core sees the same events as a stream.

Properties:
  (a) core == reference (every interval record, queue depth and longest wait, today's totals)
  (b) shuffling arrival order within the allowed lateness gives the identical record stream
  (c) duplicating any events (same event_id) gives the identical record stream
  (d) every published figure is within bounds (ratios in [0, 1], counts non-negative, ...)
  (e) whole contacts delivered late (after their intervals were published) end in the reference
      figures, with versions 1, 2, 3, ... per record
"""
from __future__ import annotations

import json
import os
import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import Event, format_ts, parse_ts_ms
from processor.core.live import live_view
from processor.core.pipeline import Pipeline
from processor.core.settings import EngineSettings, QueueSettings

BASE = parse_ts_ms("2026-11-23T09:00:00Z")
QUEUES = ("Q1", "Q2", "Q3")
LATENESS = 30_000
RETENTION = 6 * 3_600_000
# waits on and around every threshold / short-abandon limit the settings below can draw
EDGES = sorted({0, 1} | {b + d for b in (5_000, 10_000, 20_000, 30_000) for d in (-1, 0, 1)})

# CORE_PROP_EXAMPLES=1000 for a longer hunt; the default keeps this file well under 30 s
PROFILE = settings(max_examples=int(os.environ.get("CORE_PROP_EXAMPLES", "100")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------ generation


@st.composite
def engine_settings(draw) -> EngineSettings:
    per_queue = tuple(
        (q, QueueSettings(threshold_seconds=draw(st.sampled_from([10, 20, 30])),
                          short_abandon_seconds=draw(st.sampled_from([0, 5, 10]))))
        for q in QUEUES
    )
    return EngineSettings(interval_minutes=draw(st.sampled_from([5, 15, 30])), lateness_ms=LATENESS,
                          retention_ms=RETENTION, queues=per_queue)


waits = st.one_of(st.sampled_from(EDGES), st.integers(0, 150_000))
gaps = st.one_of(st.just(0), st.integers(0, 90_000))
positive = st.integers(1, 120_000)


@st.composite
def contact_history(draw, cid: str) -> list[tuple[int, str, dict]]:
    """One contact's events in true lifecycle order: (ts_ms, type, fields). Times never decrease."""
    start = draw(st.one_of(st.integers(0, 100).map(lambda m: m * 60_000), st.integers(0, 100 * 60_000)))
    t = BASE + start
    out: list[tuple[int, str, dict]] = []
    channel = draw(st.sampled_from(["voice", "chat", None]))
    if channel:
        out.append((t, "contact.created", {"channel": channel, "customer_id": "cust"}))
        t += draw(gaps)
    q = draw(st.sampled_from(QUEUES))
    agent = f"{cid}-agent"
    segments = draw(st.integers(1, 3))
    transferred = False
    last_in: dict[str, int] = {}  # queue -> time of the last event of a stay in it
    for k in range(segments):
        last = k == segments - 1
        if last_in.get(q) == t:
            # two stays in one queue inside one millisecond cannot be told apart: keep them 1 ms apart
            t += 1
        out.append((t, "contact.queued", {"queue_id": q}))
        # after a transfer, often answered in the same millisecond (one-second sources)
        t += draw(st.one_of(st.just(0), waits)) if transferred else draw(waits)
        transferred = False
        outcome = draw(st.sampled_from(["answered", "answered", "answered", "abandoned", "flowed_out", "waiting"]))
        if outcome == "waiting":
            break
        last_in[q] = t
        if outcome == "abandoned":
            out.append((t, "contact.abandoned", {"queue_id": q}))
            break
        if outcome == "flowed_out":
            out.append((t, "contact.flowed_out", {"queue_id": q, "reason": "overflow"}))
            nxt = draw(st.sampled_from(QUEUES))
            if last or not draw(st.booleans()):
                break
            t += draw(gaps)
            q = nxt
            continue
        out.append((t, "contact.answered", {"queue_id": q, "agent_id": agent}))
        held = False
        for _ in range(draw(st.integers(0, 2))):
            t += draw(positive)
            out.append((t, "contact.hold_started", {"agent_id": agent}))
            t += draw(st.integers(0, 60_000))
            out.append((t, "contact.hold_ended", {"agent_id": agent}))
            held = True
        t += draw(st.integers(0 if held else 1, 300_000))
        end = draw(st.sampled_from(["wrapup", "wrapup", "transfer", "unfinished"]))
        if end == "transfer" and not last:
            nxt = draw(st.sampled_from(QUEUES))
            out.append((t, "contact.transferred", {"agent_id": agent, "to_queue_id": nxt}))
            t += draw(st.sampled_from([0, 0, 1, 2_000]))   # often the same millisecond as the transfer
            q = nxt
            transferred = True
            continue
        if end == "unfinished":
            if draw(st.booleans()):
                out.append((t, "contact.wrapup_started", {"agent_id": agent}))
            break
        out.append((t, "contact.wrapup_started", {"agent_id": agent}))
        t += draw(st.integers(0, 120_000))
        out.append((t, "contact.wrapup_ended", {"agent_id": agent}))
        break
    return out


@st.composite
def histories(draw, max_contacts: int = 20) -> dict[str, list[Event]]:
    n = draw(st.integers(1, max_contacts))
    out = {}
    for i in range(n):
        cid = f"c{i}"
        out[cid] = [Event(event_id=f"{cid}-{k}", type=typ, ts_ms=ts, contact_id=cid, **fields)
                    for k, (ts, typ, fields) in enumerate(draw(contact_history(cid)))]
    return out


# ------------------------------------------------------------------------------ reference


def reference(contacts: dict[str, list[Event]], eng: EngineSettings):
    """Brute force from complete per-contact event lists (in lifecycle order).

    Returns ({(queue, channel, interval_start): row}, [(queue, channel, start_ms) of segments still waiting]).
    """
    rows: dict = defaultdict(lambda: defaultdict(int))
    waiting = []
    iv = eng.interval_ms

    def row(queue, channel, end):
        r = rows[(queue, channel, format_ts(end - end % iv))]
        r.setdefault("waits", [])
        return r

    for events in contacts.values():
        channel = next((e.channel for e in events if e.type == "contact.created"), "unknown")
        queued_at: dict[str, int] = {}
        leg = None  # [queue, answered_ms, hold_ms, hold_started_ms, wrapup_started_ms]
        for e in events:
            if e.type == "contact.queued":
                queued_at[e.queue_id] = e.ts_ms
            elif e.type in ("contact.answered", "contact.abandoned", "contact.flowed_out"):
                q = eng.queue(e.queue_id)
                wait = e.ts_ms - queued_at.pop(e.queue_id)
                r = row(e.queue_id, channel, e.ts_ms)
                r["waits"].append(wait)
                if e.type == "contact.answered":
                    r["answered"] += 1
                    r["answered_wait_ms"] += wait
                    if wait <= q.threshold_seconds * 1000:
                        r["answered_within_threshold"] += 1
                    leg = [e.queue_id, e.ts_ms, 0, None, None]
                elif e.type == "contact.abandoned":
                    r["abandoned"] += 1
                    if wait <= q.threshold_seconds * 1000:
                        r["abandoned_within_threshold"] += 1
                    if wait < q.short_abandon_seconds * 1000:
                        r["short_abandoned"] += 1
                else:
                    r["flowed_out"] += 1
            elif e.type == "contact.hold_started":
                leg[3] = e.ts_ms
            elif e.type == "contact.hold_ended":
                leg[2] += e.ts_ms - leg[3]
            elif e.type == "contact.wrapup_started":
                leg[4] = e.ts_ms
            elif e.type in ("contact.transferred", "contact.wrapup_ended"):
                queue, answered, hold, _, wrap = leg
                talk_end = e.ts_ms if e.type == "contact.transferred" else wrap
                r = row(queue, channel, e.ts_ms)
                r["handled"] += 1
                r["talk_ms"] += talk_end - answered - hold
                r["hold_ms"] += hold
                r["acw_ms"] += e.ts_ms - talk_end
                leg = None
        waiting += [(queue, channel, start) for queue, start in queued_at.items()]
    return rows, waiting


def ratio(n, d):
    return None if d == 0 else n / d


def expected_record(r: dict) -> dict:
    answered, abandoned, flowed = r["answered"], r["abandoned"], r["flowed_out"]
    offered = answered + abandoned + flowed
    short = r["short_abandoned"]
    a_in, ab_in = r["answered_within_threshold"], r["abandoned_within_threshold"]
    handled = r["handled"]
    return {
        "offered": offered, "answered": answered, "abandoned": abandoned, "short_abandoned": short,
        "flowed_out": flowed, "answered_within_threshold": a_in, "abandoned_within_threshold": ab_in,
        "service_level": {
            "answered_over_offered": ratio(a_in, offered - short),
            "answered_over_answered": ratio(a_in, answered),
            "abandons_positive": ratio(a_in + ab_in, answered + abandoned),
        },
        "asa_seconds": None if answered == 0 else r["answered_wait_ms"] / 1000 / answered,
        "abandon_rate": ratio(abandoned - short, offered - short),
        "max_wait_seconds": max(r["waits"]) / 1000 if r["waits"] else None,
        "handled": handled,
        "aht_seconds": None if handled == 0 else (r["talk_ms"] + r["hold_ms"] + r["acw_ms"]) / 1000 / handled,
        "talk_seconds": r["talk_ms"] / 1000,
        "hold_seconds": r["hold_ms"] / 1000,
        "acw_seconds": r["acw_ms"] / 1000,
    }


# ------------------------------------------------------------------------------ running the core


def in_time_order(contacts: dict[str, list[Event]]) -> list[Event]:
    """Arrival = event time; ties keep each contact's lifecycle order (sort is stable)."""
    return sorted((e for evs in contacts.values() for e in evs), key=lambda e: e.ts_ms)


def feed(events: list[Event], eng: EngineSettings) -> tuple[Pipeline, list[dict], list]:
    p = Pipeline(eng)
    records, dead = [], []
    for e in events:
        recs, dls = p.feed(e)
        records += recs
        dead += dls
    records += p.finish(flush=True)
    return p, [r for r in records if r["kind"] == "queue_interval"], dead  # the other kinds: test_core_new_kinds_properties.py


def latest(records: list[dict]) -> dict:
    out = {}
    for r in records:
        k = (r["queue_id"], r["channel"], r["interval_start"])
        if k not in out or r["version"] > out[k]["version"]:
            out[k] = r
    return out


def canonical(records: list[dict]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in records)


def flat(figures: dict) -> dict:
    out = {k: v for k, v in figures.items() if k != "service_level"}
    out.update({f"service_level.{k}": v for k, v in figures["service_level"].items()})
    return out


def same(have: dict, want: dict) -> bool:
    """Equal keys; None only where None is expected; numbers equal up to float rounding."""
    if set(have) != set(want):
        return False
    for k, w in want.items():
        h = have[k]
        if w is None or h is None:
            if h is not w:
                return False
        elif h != pytest.approx(w, rel=1e-12, abs=1e-9):
            return False
    return True


FIGURES = tuple(expected_record(defaultdict(int, waits=[])))


def assert_matches_reference(records: list[dict], contacts, eng: EngineSettings, p: Pipeline) -> None:
    rows, waiting = reference(contacts, eng)
    got = latest(records)
    assert set(got) == set(rows)
    for key, row in rows.items():
        want = flat(expected_record(row))
        have = flat({name: got[key][name] for name in FIGURES})
        assert same(have, want), (key, have, want)
        assert got[key]["threshold_seconds"] == eng.queue(key[0]).threshold_seconds
    # queue depth and longest wait at the end of the stream
    now = max(e.ts_ms for evs in contacts.values() for e in evs)
    live = {(x["queue_id"], x["channel"]): x for x in live_view(p.queues, now)}
    by_qc = defaultdict(list)
    for queue, channel, start in waiting:
        by_qc[(queue, channel)].append(start)
    for qc, x in live.items():
        starts = by_qc.get(qc, [])
        assert x["waiting"] == len(starts)
        assert x["longest_wait_seconds"] == (max(0, now - min(starts)) / 1000 if starts else None)
        # every generated event is on the same UTC day: "today" is the sum of all intervals
        today = x["windows"]["today"]
        mine = [r for k, r in rows.items() if k[:2] == qc]
        assert today["offered"] == sum(expected_record(r)["offered"] for r in mine)
        assert today["handled"] == sum(r["handled"] for r in mine)
    assert set(by_qc) <= set(live)


# ------------------------------------------------------------------------------ properties


@PROFILE
@given(eng=engine_settings(), contacts=histories())
def test_a_core_equals_reference(eng, contacts):
    p, records, dead = feed(in_time_order(contacts), eng)
    assert dead == []
    assert all(r["version"] == 1 for r in records)  # in-order input never corrects a record
    assert_matches_reference(records, contacts, eng, p)


@PROFILE
@given(eng=engine_settings(), contacts=histories(), seed=st.integers(0, 2**32 - 1))
def test_b_shuffle_within_lateness_gives_identical_rollups(eng, contacts, seed):
    ordered = in_time_order(contacts)
    rng = random.Random(seed)
    # arrival key = event time + a delay below the lateness: nothing arrives later than allowed
    delays = {e.event_id: rng.randrange(0, LATENESS) for e in ordered}
    shuffled = sorted(ordered, key=lambda e: e.ts_ms + delays[e.event_id])
    _, base, _ = feed(ordered, eng)
    p, records, dead = feed(shuffled, eng)
    assert dead == []
    assert canonical(records) == canonical(base)
    assert_matches_reference(records, contacts, eng, p)


@PROFILE
@given(eng=engine_settings(), contacts=histories(), seed=st.integers(0, 2**32 - 1))
def test_c_duplicates_give_identical_rollups(eng, contacts, seed):
    ordered = in_time_order(contacts)
    rng = random.Random(seed)
    noisy = list(ordered)
    for e in ordered:
        if rng.random() < 0.3:
            # a redelivery of the same event (same event_id), anywhere after the original
            i = noisy.index(e)
            noisy.insert(rng.randint(i + 1, len(noisy)), e)
    _, base, _ = feed(ordered, eng)
    p, records, dead = feed(noisy, eng)
    assert dead == []
    assert p.counts.duplicates == len(noisy) - len(ordered)
    assert canonical(records) == canonical(base)


def assert_in_bounds(f: dict) -> None:
    for name in ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "handled"):
        assert isinstance(f[name], int) and f[name] >= 0, name
    assert f["offered"] == f["answered"] + f["abandoned"] + f["flowed_out"]
    assert f["short_abandoned"] <= f["abandoned"]
    if "answered_within_threshold" in f:
        assert 0 <= f["answered_within_threshold"] <= f["answered"]
        assert 0 <= f["abandoned_within_threshold"] <= f["abandoned"]
        for name in ("talk_seconds", "hold_seconds", "acw_seconds"):
            assert f[name] >= 0, name
    sl = f["service_level"]
    assert (sl["answered_over_offered"] is None) == (f["offered"] - f["short_abandoned"] == 0)
    assert (sl["answered_over_answered"] is None) == (f["answered"] == 0)
    assert (sl["abandons_positive"] is None) == (f["answered"] + f["abandoned"] == 0)
    assert (f["abandon_rate"] is None) == (f["offered"] - f["short_abandoned"] == 0)
    assert (f["asa_seconds"] is None) == (f["answered"] == 0)
    assert (f["aht_seconds"] is None) == (f["handled"] == 0)
    assert (f["max_wait_seconds"] is None) == (f["offered"] == 0)
    for value in (*sl.values(), f["abandon_rate"]):
        assert value is None or 0.0 <= value <= 1.0
    for name in ("asa_seconds", "aht_seconds", "max_wait_seconds"):
        assert f[name] is None or f[name] >= 0, name
    if f["asa_seconds"] is not None:
        assert f["asa_seconds"] <= f["max_wait_seconds"] + 1e-9


@PROFILE
@given(eng=engine_settings(), contacts=histories(), seed=st.integers(0, 2**32 - 1))
def test_d_figures_within_bounds(eng, contacts, seed):
    ordered = in_time_order(contacts)
    rng = random.Random(seed)
    delays = {e.event_id: rng.randrange(0, LATENESS) for e in ordered}
    p = Pipeline(eng)
    checks = 0
    for e in sorted(ordered, key=lambda e: e.ts_ms + delays[e.event_id]):
        records, _ = p.feed(e)
        for r in records:
            if r["kind"] == "queue_interval":
                assert_in_bounds(r)
        if rng.random() < 0.1:
            for row in live_view(p.queues, p.contacts.stream_ms + rng.randrange(0, 120_000)):
                assert row["waiting"] >= 0
                assert row["longest_wait_seconds"] is None or row["longest_wait_seconds"] >= 0
                for w in row["windows"].values():
                    assert_in_bounds(w)
                checks += 1
    for r in p.finish():
        if r["kind"] == "queue_interval":
            assert_in_bounds(r)


@PROFILE
@given(eng=engine_settings(), contacts=histories(), late=st.sets(st.integers(0, 19), max_size=6))
def test_e_late_contacts_correct_published_records(eng, contacts, late):
    late_ids = {f"c{i}" for i in late} & set(contacts)
    on_time = {cid: evs for cid, evs in contacts.items() if cid not in late_ids}
    stream = in_time_order(on_time) if on_time else []
    # the late contacts arrive after everything else, each in its own lifecycle order
    stream += [e for cid in sorted(late_ids) for e in contacts[cid]]
    p, records, dead = feed(stream, eng)
    assert dead == []
    assert_matches_reference(records, contacts, eng, p)
    versions = defaultdict(list)
    for r in records:
        versions[(r["queue_id"], r["channel"], r["interval_start"])].append(r["version"])
    for key, vs in versions.items():
        assert vs == list(range(1, len(vs) + 1)), key
