"""Hostile and broken input, mixed into a valid hand scenario, through `kpi replay`'s path
(`processor.replay.replay_lines`: decode, then the core pipeline, dead letters as JSON lines).

The valid scenario (seven contacts over two queues, holds, a transfer, an abandon, a flow-out,
replies, surveys, QA, a resolve and a reopen, a repeat contact, two agents' states, a churn) is
replayed alone once; every property below replays it again with hostile lines inserted at
positions hypothesis chooses, and compares.

  (a) lines the decoder must reject (not JSON, non-UTF-8, NaN, deep nesting, huge, wrong types,
      missing fields, unknown types, duplicate keys, times in year 1 / 9999 / before 1970):
      the rollup output is byte-identical, and each hostile line is dead-lettered once, whole,
      with its expected reason;
  (b) schema-valid hostile events that reach the core (impossible orders, times days in the
      past, skewed clocks within the retention, a 60 KB event, exact and conflicting duplicates
      of valid events): the latest version of every record of the valid queues and agents is
      identical to the run without them; impossible orders and too-old events are dead-lettered
      with `impossible_order` / `too_late`; duplicates are counted and change nothing; the rest
      (valid events of other contacts) only adds records of the hostile queue and agent;
  (c) every reason is counted by the worker's Health on /metrics and logged once;
  (d) the edges of the accepted time range go through the core in far-east and far-west zones
      without an exception;
  (e) an event far in the future on another contact is dead-lettered `from_the_future` by the
      wall-clock bound `kpi replay` applies (as a worker does), and changes no valid figure.

`replay()` below applies the command's default bound (wall clock at the start + max_future_seconds);
the valid scenario lies in the past (2026-11-23, 09:00-11:00 UTC).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import CONTACT_TYPES, Event, event_to_contract, parse_ts_ms
from processor.core.pipeline import Pipeline
from processor.config import Settings
from processor.core.settings import EngineSettings, QueueSettings
from processor.decode import MAX_EVENT_BYTES, MAX_TS_MS, BadEvent, decode
from processor.replay import not_after_bound, replay_lines
from tests.coretools import Contact, agent_state, at, churned, engine, ev, record_key

ENGINE = engine()  # 15-minute intervals, lateness 30 s, retention 2 h, W 7 days
DOCUMENTED = {"too_large", "not_json", "not_object", "unknown_type", "invalid_field", "bad_timestamp",
              "impossible_order", "too_late", "from_the_future"}
MAX_FUTURE_SECONDS = Settings().max_future_seconds  # the default bound, as `kpi replay` applies it
PROFILE = settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "150")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.large_base_example])
HOSTILE_QUEUE, HOSTILE_AGENT = "HQ", "ha1"


# ------------------------------------------------------------------------------ the valid scenario

@lru_cache(maxsize=1)
def scenario() -> tuple[Event, ...]:
    c1 = (Contact("c1", created="09:00:00", customer_id="cu1", issue="billing").queued("Q1", "09:00:01")
          .answered("Q1", "09:00:12", "a1").hold("09:02:00", "09:03:00").wrapup("09:06:00", "09:07:00")
          .resolved("09:07:30").survey("csat", 5, 5, "09:10:00"))
    c1.agent = "a1"
    c1.qa(90, "09:30:00")
    c2 = Contact("c2", channel="chat", created="09:01:00", customer_id="cu2").queued("Q2", "09:01:05") \
        .abandoned("Q2", "09:01:09")
    c3 = Contact("c3", created="09:05:00", customer_id="cu3", agent="a2").queued("Q1", "09:05:01") \
        .answered("Q1", "09:05:20").transferred("Q2", "09:08:00").queued("Q2", "09:08:00") \
        .answered("Q2", "09:08:40").wrapup("09:12:00", "09:13:00")
    c4 = Contact("c4", channel="email", created="09:14:00", customer_id="cu4").queued("Q2", "09:15:00") \
        .flowed_out("Q2", "09:20:00", "overflow")
    c5 = Contact("c5", channel="ticket", created="09:30:00", customer_id="cu5", agent="a1") \
        .queued("Q1", "09:30:01").answered("Q1", "09:31:00").replied("09:32:00").replied("09:33:00", automated=True) \
        .wrapup("09:40:00", "09:41:00").resolved("09:50:00").reopened("10:05:00")
    c6 = Contact("c6", created="09:40:00", customer_id="cu6").queued("Q1", "09:40:01")  # still waiting at the end
    c7 = Contact("c7", created="10:00:00", customer_id="cu1", issue="billing", agent="a2") \
        .queued("Q1", "10:00:01").answered("Q1", "10:00:30").wrapup("10:04:00", "10:05:00").resolved("10:05:00") \
        .survey("nps", 9, 10, "10:10:00")
    agents = [
        agent_state("a1", "available", "08:50:00", queues=("Q1", "Q2")),
        agent_state("a1", "busy", "09:00:12", queues=("Q1", "Q2")),
        agent_state("a1", "acw", "09:06:00", queues=("Q1", "Q2")),
        agent_state("a1", "available", "09:07:00", queues=("Q1", "Q2")),
        agent_state("a2", "available", "08:55:00", queues=("Q1", "Q2"), capacity=2),
        agent_state("a2", "away", "10:20:00", queues=("Q1", "Q2"), capacity=2),
        agent_state("a2", "offline", "10:30:00", queues=("Q1", "Q2")),
    ]
    events = [e for c in (c1, c2, c3, c4, c5, c6, c7) for e in c.events] + agents + [churned("cu2", "10:15:00")]
    events.sort(key=lambda e: e.ts_ms)
    # A few of them out of order (within the lateness), as real sources deliver them.
    events[3], events[4] = events[4], events[3]
    events.append(ev("contact.resolved", "11:00:00", "tick", event_id="tick"))  # closes every interval
    return tuple(events)


def line(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@lru_cache(maxsize=1)
def valid() -> tuple[tuple[dict, ...], tuple[bytes, ...]]:
    docs = tuple(event_to_contract(e) for e in scenario())
    return docs, tuple(line(d) for d in docs)


def replay(lines) -> tuple[str, list[dict], Pipeline]:
    """`kpi replay` without options: the wall clock at the start + max_future_seconds bounds event times."""
    out, dead = io.StringIO(), io.StringIO()
    p = replay_lines(lines, ENGINE, out, dead, not_after_ms=not_after_bound(None, MAX_FUTURE_SECONDS))
    return out.getvalue(), [json.loads(x) for x in dead.getvalue().splitlines()], p


@lru_cache(maxsize=1)
def baseline() -> tuple[str, dict]:
    out, dead, p = replay(valid()[1])
    assert dead == [] and p.counts.duplicates == 0
    return out, latest(out)


def latest(out: str) -> dict[tuple, dict]:
    best: dict[tuple, dict] = {}
    for text in out.splitlines():
        r = json.loads(text)
        k = record_key(r)
        if k not in best or r["version"] > best[k]["version"]:
            best[k] = r
    return {k: {f: v for f, v in r.items() if f != "version"} for k, r in best.items()}


def is_hostile_key(k: tuple) -> bool:
    return k[1] in (HOSTILE_QUEUE, HOSTILE_AGENT)


def test_the_scenario_is_valid_and_covers_every_kind():
    docs, lines = valid()
    for d, raw, e in zip(docs, lines, scenario()):
        assert decode(raw) == e
    out, best = baseline()
    kinds = {k[0] for k in best}
    assert kinds == {"queue_interval", "experience_interval", "agent_interval", "resolution_day", "retention_day"}
    q1 = best[("queue_interval", "Q1", "voice", "2026-11-23T09:00:00.000Z")]
    assert (q1["offered"], q1["answered"], q1["handled"]) == (2, 2, 2)  # c1, and c3 up to its transfer
    assert not any(is_hostile_key(k) for k in best)


# ------------------------------------------------------------------------------ (a) decoder rejects

RESOLVED = {"event_id": "h-x", "type": "contact.resolved", "ts": "2026-11-23T09:00:05.120Z", "contact_id": "h-c"}


def _padded(doc: dict, total: int) -> bytes:
    raw = line({**doc, "pad": ""})
    return raw[:-3] + b'"' + b"x" * (total - len(raw)) + b'"}'


@st.composite
def rejected_line(draw, docs: tuple[dict, ...]) -> tuple[bytes, str]:
    """One line the decoder must reject, and the reason it must give."""
    base = dict(draw(st.sampled_from(docs)))
    kind = draw(st.integers(0, 17))
    if kind == 0:  # huge
        return _padded(base, draw(st.sampled_from([MAX_EVENT_BYTES + 1, 200_000, 1 << 20]))), "too_large"
    if kind == 1:  # deep nesting inside an event, or as the whole message
        depth = draw(st.sampled_from([10_000, 30_000]))
        if draw(st.booleans()):
            return line(base)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}", "not_json"
        return b"[" * depth + b"]" * depth, "not_json"
    if kind == 2:  # NaN / Infinity where a number or a string is expected
        field = draw(st.sampled_from(["score", "priority", "capacity", "ts", "queue_id"]))
        token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        return line(base)[:-1] + b',"' + field.encode() + b'":' + token + b"}", "not_json"
    if kind == 3:  # bytes that are not UTF-8, inside a string value
        raw = line(base)
        i = raw.index(b'"', raw.index(b'"event_id":"') + 12)  # the closing quote of the id
        return raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])) + raw[i:], "not_json"
    if kind == 4:  # a lone UTF-16 surrogate escape
        return line(base)[:-1] + b',"note":"\\ud800"}', "not_json"
    if kind == 5:  # truncated / garbage
        raw = line(base)
        return raw[: draw(st.integers(1, len(raw) - 1))], "not_json"
    if kind == 6:
        garbage = draw(st.binary(max_size=40).filter(lambda b: b"\n" not in b))
        return draw(st.sampled_from([b"<", b"\x00", b"\xef\xbb\xbf{"])) + garbage, "not_json"  # markup, NUL, BOM
    if kind == 7:  # JSON, not an object
        return line(draw(st.sampled_from([[base], "contact.queued", 42, None, True, []]))), "not_object"
    if kind == 8:  # unknown type (also: right name, wrong case)
        return line({**base, "type": draw(st.sampled_from(["contact.unknown", "CONTACT.QUEUED", "", "x" * 500]))}), \
            "unknown_type"
    if kind == 9:  # duplicate key: the last "type" wins
        return line(base)[:-1] + b',"type":"contact.teleported"}', "unknown_type"
    if kind == 10:  # missing required field
        field = draw(st.sampled_from(["event_id", "type", "ts"] + ([] if base["type"].startswith(("agent.", "customer."))
                                                                  else ["contact_id"])))
        base.pop(field)
        return line(base), "invalid_field"
    if kind == 11:  # wrong types
        field, value = draw(st.sampled_from([("event_id", 17), ("event_id", ""), ("event_id", "x" * 201),
                                             ("contact_id", ["c1"]), ("contact_id", {"id": "c1"}), ("type", 3)]))
        if field == "contact_id" and base["type"].startswith(("agent.", "customer.")):
            field, value = "event_id", None
        return line({**base, field: value}), "invalid_field"
    if kind == 12:  # floats where integers are expected, strings for numbers, bad enums
        pick = draw(st.integers(0, 4))
        if pick == 0:
            d = next(d for d in docs if d["type"] == "contact.queued")
            return line({**d, "priority": draw(st.sampled_from([1.5, "2", -0.5]))}), "invalid_field"
        if pick == 1:
            d = next(d for d in docs if d["type"] == "agent.state_changed")
            return line({**d, "capacity": draw(st.sampled_from([2.5, "2", -1]))}), "invalid_field"
        if pick == 2:
            d = next(d for d in docs if d["type"] == "survey.responded")
            return line({**d, "score": draw(st.sampled_from(["5", 6, 1e300]))}), "invalid_field"
        if pick == 3:
            d = next(d for d in docs if d["type"] == "contact.created")
            return line({**d, "channel": draw(st.sampled_from(["fax", "Voice", None]))}), "invalid_field"
        d = next(d for d in docs if d["type"] == "agent.state_changed")
        return line({**d, "queues": draw(st.sampled_from(["Q1", [1], [None], None]))}), "invalid_field"
    if kind == 13:  # times outside what the core can place
        ts = draw(st.sampled_from(["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "1969-12-31T23:59:59.999Z",
                                   "9999-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00Z"]))
        return line({**base, "ts": ts}), "bad_timestamp"
    if kind == 14:  # malformed times
        ts = draw(st.sampled_from(["2026-11-23T09:00:00", "2026-11-23", 1795424405120, None, "2026-02-30T09:00:00Z",
                                   "2026-11-23T09:00:00+24:00", "2026-11-23 09:00:00Z", "2026-11-23T09:00:00Z" + "0" * 40]))
        return line({**base, "ts": ts}), "bad_timestamp"
    if kind == 15:  # a survey score over its scale: a rule no schema states
        d = next(d for d in docs if d["type"] == "survey.responded")
        return line({**d, "score": 6, "scale_max": 5}), "invalid_field"
    if kind == 16:  # a huge string in a field (under the size limit)
        return line({**base, "event_id": "e" * 60_000}), "invalid_field"
    return line({**RESOLVED, "ts": draw(st.sampled_from(["9999-06-01T00:00:00Z", "1900-01-01T00:00:00Z"]))}), \
        "bad_timestamp"


@st.composite
def with_rejected(draw):
    docs, lines = valid()
    hostile = draw(st.lists(rejected_line(docs), min_size=1, max_size=8))
    positions = sorted(draw(st.lists(st.integers(0, len(lines)), min_size=len(hostile), max_size=len(hostile))))
    return hostile, positions


@PROFILE
@given(with_rejected())
def test_decoder_rejects_change_no_output_and_are_dead_lettered_whole(case):
    hostile, positions = case
    for raw, reason in hostile:
        with pytest.raises(BadEvent) as info:
            decode(raw)
        assert info.value.reason == reason, (raw[:200], info.value.reason, info.value.detail)
    # stable insertion keeps the hostile lines in their drawn order
    lines = list(valid()[1])
    for k, (pos, (raw, _)) in enumerate(zip(positions, hostile)):
        lines.insert(pos + k, raw)
    out, dead, p = replay(lines)
    assert out == baseline()[0]  # byte-identical rollup output, every version in the same order
    assert [d["reason"] for d in dead] == [reason for _, reason in hostile]
    for d, (raw, _) in zip(dead, hostile):
        assert d["reason"] in DOCUMENTED and d["detail"]
        assert d["raw"] == raw.decode("utf-8", "replace")  # whole (non-UTF-8 bytes become U+FFFD)
    assert p.counts.dead_letters == len(hostile) and p.counts.events == len(valid()[1])


# ------------------------------------------------------------------------------ (b) through the core

def _hostile_contact(n: int, start: int, queue: str = HOSTILE_QUEUE) -> list[dict]:
    """A whole, valid contact of the hostile queue and agent (its own customer), from `start` (ms)."""
    c = Contact(f"h-{n}", created=start, customer_id=f"hc-{n}", agent=HOSTILE_AGENT) \
        .queued(queue, start + 1_000).answered(queue, start + 9_000).wrapup(start + 60_000, start + 90_000)
    return [event_to_contract(dataclasses.replace(e, event_id=f"h-{n}-{i}")) for i, e in enumerate(c.events)]


MINUTE, HOUR, DAY_MS = 60_000, 3_600_000, 86_400_000
RETENTION = ENGINE.retention_ms
# How far ahead of stream time a hostile event may be: the lateness (30 s) minus the scenario's own
# disorder (an answer delivered 11 s before its contact.queued), minus a margin.
AHEAD_MS = 15_000


def _doc(n: int, type_: str, ts: int, **fields) -> dict:
    return event_to_contract(Event(f"h-{n}", type_, ts, f"h-{n}", **fields))


def _shift(ts_text: str, delta_ms: int) -> str:
    return event_to_contract(Event("x", "x", parse_ts_ms(ts_text) + delta_ms, "x"))["ts"]


@st.composite
def core_hostile(draw, n: int) -> tuple[str, list[dict], int]:
    """(what it is, its events, where it goes) for one schema-valid hostile item; ids unique to it.

    Times are relative to the stream time at the insertion point (the newest valid event before
    it): what a source with a skewed clock, or a replay of old messages, would deliver then.
    """
    docs, lines = valid()
    last = len(lines) - 1  # the closing tick stays last
    kind = draw(st.sampled_from(["impossible", "past", "skew", "big", "int_float", "duplicate", "conflict"]))
    if kind == "conflict":  # the same event_id (and key) with other content, sent after the original
        i = draw(st.sampled_from([i for i, d in enumerate(docs[:last]) if d["type"] != "agent.state_changed"]))
        pos = draw(st.integers(i + 1, last))
        changed = dict(docs[i])
        field = draw(st.sampled_from(["ts", "queue_id", "agent_id", "channel", "score", "customer_id"]))
        if field not in changed or field == "ts":
            changed["ts"] = _shift(changed["ts"], draw(st.sampled_from([-30 * MINUTE, -1_000, 7_000, 30 * MINUTE])))
        elif field == "score":
            changed["score"] = 1.0
        elif field == "channel":
            changed["channel"] = "social"
        else:
            changed[field] = "hc-forged" if field == "customer_id" else f"{changed[field]}-forged"
        return kind, [changed], pos
    if kind == "duplicate":  # the same message again (a redelivery, so after the original)
        i = draw(st.integers(0, last - 1))
        return kind, [dict(docs[i])], draw(st.integers(i + 1, last))
    pos = draw(st.integers(1 if kind == "past" else 0, last))
    now = max(parse_ts_ms(d["ts"]) for d in docs[:max(pos, 1)])
    if kind == "past":  # older than the retention behind stream time: too late (a day, a year, 1970...)
        ts = draw(st.sampled_from([now - RETENTION - 1, now - DAY_MS, now - 3 * DAY_MS, now - 365 * DAY_MS, 0, 1]))
        return kind, [_doc(n, "contact.queued", ts, queue_id=HOSTILE_QUEUE)], pos
    # A clock up to an hour behind, or up to AHEAD_MS ahead (see the xfail test of a source further ahead).
    t = now + draw(st.integers(-60 * MINUTE, AHEAD_MS))
    if kind == "impossible":
        return kind, [draw(st.sampled_from([
            _doc(n, "contact.answered", t, queue_id=HOSTILE_QUEUE, agent_id=HOSTILE_AGENT),
            _doc(n, "contact.hold_started", t, agent_id=HOSTILE_AGENT),
            _doc(n, "contact.hold_ended", t, agent_id=HOSTILE_AGENT),
            _doc(n, "contact.wrapup_started", t, agent_id=HOSTILE_AGENT),
            _doc(n, "contact.wrapup_ended", t, agent_id=HOSTILE_AGENT),
            _doc(n, "contact.transferred", t, agent_id=HOSTILE_AGENT, to_queue_id="Q1"),
            _doc(n, "contact.abandoned", t, queue_id="Q1"),  # names a valid queue: still changes nothing
        ]))], pos
    contact = _hostile_contact(n, t - 90_000)  # its last event (the wrap-up end, 90 s in) at t
    if kind == "big":  # valid, just big: a 60 KB extension field
        contact[0]["notes"] = "n" * 60_000
    elif kind == "int_float":  # 2.0 for an integer: valid by JSON Schema, read as 2
        contact[1]["priority"] = 2.0
    return kind, contact, pos


@st.composite
def with_core_hostile(draw):
    return [draw(core_hostile(n)) for n in range(draw(st.integers(1, 6)))]


@PROFILE
@given(with_core_hostile())
def test_hostile_events_in_the_core_change_no_valid_figure(placed):
    lines = list(valid()[1])
    for _, docs, pos in sorted(placed, key=lambda x: x[2], reverse=True):
        lines[pos:pos] = [line(d) for d in docs]
    out, dead, p = replay(lines)

    got = latest(out)
    assert {k: r for k, r in got.items() if not is_hostile_key(k)} == baseline()[1]

    dead_by_id: dict[str, list[str]] = {}
    for d in dead:
        assert d["reason"] in DOCUMENTED
        dead_by_id.setdefault(json.loads(d["raw"])["event_id"], []).append(d["reason"])
    expected_dead = {docs[0]["event_id"]: ["impossible_order" if kind == "impossible" else "too_late"]
                     for kind, docs, _ in placed if kind in ("impossible", "past")}
    assert dead_by_id == expected_dead  # no valid event, and no other hostile one, was dead-lettered
    # repeats of contact events and of churns (same customer) are counted; of agent presence only when it is
    # the one held (not asserted); a churn re-sent under another customer_id is another key (not a repeat)
    repeats = [docs[0] for kind, docs, _ in placed if kind in ("duplicate", "conflict")]
    counted = sum(d["type"] in CONTACT_TYPES or (d["type"] == "customer.churned" and d["customer_id"] != "hc-forged")
                  for d in repeats)
    agent_repeats = sum(d["type"] == "agent.state_changed" for d in repeats)
    assert counted <= p.counts.duplicates <= counted + agent_repeats
    assert p.counts.dead_letters == len(dead)
    # what was accepted from hostile contacts counts under the hostile queue and agent only
    hostile_accepted = any(kind in ("skew", "big", "int_float") for kind, _, _ in placed)
    assert any(is_hostile_key(k) for k in got) == hostile_accepted


# ------------------------------------------------------------------------------ (c) counted by reason

def test_every_reason_is_counted_on_metrics_and_logged_once(caplog):
    """The worker counts each dead letter by reason (Health.dead_letter, as worker/stages.py's stage one calls
    it for decoder and core rejections) and shows the counts as kpi_events_dead_lettered_total."""
    import logging

    from prometheus_client import CollectorRegistry, generate_latest

    from processor.config import Settings
    from processor.metrics import WorkerCollector
    from processor.worker.health import Health
    from processor.worker.runtime import Runtime

    docs, lines = valid()
    bad = [_padded(docs[0], MAX_EVENT_BYTES + 1), b"{nope", b"[1]", line({**docs[0], "type": "x.y"}),
           line({**docs[0], "event_id": 7}), line({**docs[0], "ts": "0001-01-01T00:00:00Z"})]
    hostile = [line(_doc(90, "contact.answered", at("09:20:00"), queue_id=HOSTILE_QUEUE, agent_id=HOSTILE_AGENT)),
               line(_doc(91, "contact.queued", at("06:00:00"), queue_id=HOSTILE_QUEUE))]
    mixed = list(lines[:10]) + bad + bad[:2] + hostile + list(lines[10:])
    _, dead, _ = replay(mixed)
    rt = Runtime(Settings(), Health(), CollectorRegistry())
    rt.registry.register(WorkerCollector(rt))
    caplog.set_level(logging.WARNING, logger="processor")
    for d in dead:
        rt.health.dead_letter(d["reason"], d["detail"])
    text = generate_latest(rt.registry).decode()
    want = {"too_large": 2, "not_json": 2, "not_object": 1, "unknown_type": 1, "invalid_field": 1,
            "bad_timestamp": 1, "impossible_order": 1, "too_late": 1}
    for reason, n in want.items():
        assert f'kpi_events_dead_lettered_total{{reason="{reason}"}} {float(n)}' in text, (reason, text)
    logged = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(logged) == len(want)  # once per reason, the counter tells the rest


# ------------------------------------------------------------------------------ (d) edges of time

ZONES = EngineSettings(interval_minutes=15, lateness_ms=30_000, retention_ms=7_200_000, recontact_window_ms=90 * DAY_MS,
                       queues=(("east", QueueSettings(time_zone="Pacific/Kiritimati")),
                               ("west", QueueSettings(time_zone="Etc/GMT+12")),
                               ("hol", QueueSettings(time_zone="America/St_Johns"))))


@pytest.mark.parametrize("first", ["1970-01-01T00:00:00.000Z", "9998-12-31T23:50:00.000Z", "9998-12-31T23:58:59.999+13:59"])
@pytest.mark.parametrize("queue", ["east", "west", "hol"])
def test_edges_of_the_accepted_time_range_go_through_the_core(first, queue):
    t = decode(line({**RESOLVED, "ts": first})).ts_ms
    contact = Contact("edge", created=t, customer_id="cu-edge").queued(queue, t).answered(queue, t + 1_000) \
        .wrapup(t + 2_000, t + 3_000).resolved(t + 3_000).survey("csat", 5, 5, t + 4_000)
    events = contact.events + [agent_state("ag", "busy", t, queues=(queue,)), churned("cu-edge", t + 5_000),
                               ev("contact.hold_ended", t + 6_000, "orphan", agent_id="ag"),
                               ev("contact.resolved", min(t + HOUR, MAX_TS_MS - 1), "tick2")]
    lines = [line(event_to_contract(e)) for e in events]
    lines.append(line(event_to_contract(dataclasses.replace(events[1], event_id="late", ts_ms=t - 3 * 3_600_000)))
                 if t >= 3 * 3_600_000 else line(event_to_contract(events[1])))
    out, dead = io.StringIO(), io.StringIO()
    p = replay_lines(lines, ZONES, out, dead)
    records = [json.loads(x) for x in out.getvalue().splitlines()]
    reasons = sorted(json.loads(x)["reason"] for x in dead.getvalue().splitlines())
    assert {r["kind"] for r in records} >= {"queue_interval", "agent_interval", "experience_interval", "resolution_day"}
    q = next(r for r in records if r["kind"] == "queue_interval")
    assert (q["queue_id"], q["answered"]) == (queue, 1)
    assert reasons == (["impossible_order", "too_late"] if t >= 3 * 3_600_000 else ["impossible_order"])
    assert p.counts.duplicates == (0 if t >= 3 * 3_600_000 else 1)


# ------------------------------------------------------------------------------ (e) the wall-clock bound

@pytest.mark.parametrize("ahead_ms", [2 * DAY_MS, 365 * DAY_MS])
def test_far_future_event_on_another_contact_changes_no_valid_figure(ahead_ms):
    lines = list(valid()[1])
    # One contact two days (or a year) ahead of the wall clock: without the bound it would move stream
    # time, every valid event after it would be too_late, and every known agent would get an
    # agent_interval record for each interval up to that time (35,040 per agent for a year).
    future = _hostile_contact(99, int(time.time() * 1000) + ahead_ms)[:2]  # created, queued in HQ
    lines[5:5] = [line(d) for d in future]
    out, dead, p = replay(lines)
    assert [(d["reason"], json.loads(d["raw"])["event_id"]) for d in dead] == [
        ("from_the_future", d["event_id"]) for d in future]
    assert p.counts.from_the_future == 2
    assert latest(out) == baseline()[1]  # nothing of the future contact's queue either


def test_conflicting_duplicate_of_an_agent_event_changes_no_valid_figure():
    docs, lines = valid()
    i = next(i for i, d in enumerate(docs) if d["type"] == "agent.state_changed" and d["state"] == "busy")
    forged = {**docs[i], "state": "away"}
    out, _, _ = replay(list(lines[:-1]) + [line(forged), lines[-1]])
    assert latest(out) == baseline()[1]


def test_source_a_minute_ahead_changes_no_valid_figure():
    lines = list(valid()[1])
    assert json.loads(lines[3])["type"] == "contact.answered" and json.loads(lines[4])["type"] == "contact.queued"
    ahead = _hostile_contact(98, at("09:00:00"))  # a whole contact up to 90 s ahead, just before the swapped pair
    lines[3:3] = [line(d) for d in ahead]
    out, dead, _ = replay(lines)
    assert dead == []
    assert {k: r for k, r in latest(out).items() if not is_hostile_key(k)} == baseline()[1]
