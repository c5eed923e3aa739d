"""processor.decode: every bad-input class gets its reason, and the fast decoder agrees with jsonschema."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from processor.core.events import EVENT_TYPES, Event, parse_ts_ms
from processor.decode import MAX_EVENT_BYTES, REASONS, BadEvent, decode

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLE_FILES = sorted((SCHEMAS / "examples" / "events").glob("*.json"))
EXAMPLES = {p.stem: json.loads(p.read_text()) for p in EXAMPLE_FILES}
REF = {t: Draft202012Validator(json.loads((SCHEMAS / f"events/{t}.schema.json").read_text())) for t in EVENT_TYPES}

RESOLVED = {"event_id": "e-1", "type": "contact.resolved", "ts": "2026-11-23T09:00:05.120Z", "contact_id": "c-1"}


def reason_of(raw) -> str:
    with pytest.raises(BadEvent) as info:
        decode(raw)
    assert info.value.reason in REASONS
    assert info.value.detail and len(info.value.detail) < 500
    return info.value.reason


def with_(base: dict, **changes) -> bytes:
    doc = copy.deepcopy(base)
    for k, v in changes.items():
        if v is DEL:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


DEL = object()


# ------------------------------------------------------------------------------ good input

@pytest.mark.parametrize("t", EVENT_TYPES)
def test_example_decodes_to_the_event_it_describes(t):
    doc = EXAMPLES[t]
    ev = decode(json.dumps(doc).encode())
    assert isinstance(ev, Event)
    check_event(ev, doc)


def check_event(ev: Event, doc: dict) -> None:
    """Every contract field of the type lands in the Event, with the core's types; nothing else does."""
    t = doc["type"]
    assert ev.event_id == doc["event_id"] and ev.type == t
    assert ev.ts_ms == ts_ms(doc["ts"])
    props = REF[t].schema["properties"]
    for name in ("contact_id", "channel", "customer_id", "issue", "queue_id", "agent_id", "reason",
                 "to_queue_id", "survey", "state"):
        assert getattr(ev, name) == (doc.get(name) if name in props else None), name
    for name in ("priority", "capacity"):
        want = doc.get(name) if name in props else None
        got = getattr(ev, name)
        assert got == want and (got is None or type(got) is int), name
    for name in ("score", "scale_max"):
        want = doc.get(name) if name in props else None
        got = getattr(ev, name)
        assert got == want and (got is None or type(got) is float), name
    assert ev.automated is (doc.get("automated") is True if "automated" in props else False)
    assert ev.queues == (tuple(doc["queues"]) if "queues" in props else ())


def ts_ms(text: str) -> int:
    try:
        return parse_ts_ms(text)
    except ValueError:
        return parse_ts_ms(text.upper())


def test_accepts_str_bytes_bytearray_memoryview():
    raw = json.dumps(RESOLVED)
    for value in (raw, raw.encode(), bytearray(raw.encode()), memoryview(raw.encode())):
        assert decode(value).contact_id == "c-1"


def test_timestamps_become_epoch_ms_whatever_the_offset():
    base = decode(with_(RESOLVED, ts="2026-11-23T09:00:05.120Z")).ts_ms
    assert base == 1795424405120
    assert decode(with_(RESOLVED, ts="2026-11-23T10:00:05.120+01:00")).ts_ms == base
    assert decode(with_(RESOLVED, ts="2026-11-23T04:00:05.12-05:00")).ts_ms == base
    assert decode(with_(RESOLVED, ts="2026-11-23t09:00:05.120999999z")).ts_ms == base  # truncated to ms
    assert decode(with_(RESOLVED, ts="2026-11-23T09:00:05Z")).ts_ms == base - 120


def test_optional_fields_absent_or_null_mean_not_given():
    replied = EXAMPLES["message.agent_replied"]
    assert decode(with_(replied, automated=DEL)).automated is False
    assert decode(with_(replied, automated=None)).automated is False
    assert decode(with_(replied, automated=True)).automated is True
    created = EXAMPLES["contact.created"]
    assert decode(with_(created, issue=None)).issue is None
    assert decode(with_(created, issue=DEL)).issue is None
    queued = EXAMPLES["contact.queued"]
    assert decode(with_(queued, priority=None)).priority is None
    assert decode(with_(queued, priority=DEL)).priority is None
    agent = EXAMPLES["agent.state_changed"]
    assert decode(with_(agent, capacity=None)).capacity is None
    assert decode(with_(agent, queues=[])).queues == ()


def test_integral_floats_are_integers_and_ints_are_scores():
    ev = decode(with_(EXAMPLES["contact.queued"], priority=3.0))
    assert ev.priority == 3 and type(ev.priority) is int
    ev = decode(with_(EXAMPLES["qa.scored"], score=100))
    assert ev.score == 100.0 and type(ev.score) is float


def test_extensions_are_accepted_and_ignored():
    ev = decode(with_(RESOLVED, x_vendor={"a": [1, 2, {"b": None}]}, queue_id="not-on-this-type",
                      channel="fax"))
    assert ev.queue_id is None and ev.channel is None
    ev = decode(with_(EXAMPLES["agent.state_changed"], contact_id="c-9"))
    assert ev.contact_id is None and ev.key == "a-17"
    assert decode(with_(EXAMPLES["customer.churned"], contact_id="c-9")).key == "cust-42"


def test_a_message_of_exactly_64_kib_is_accepted():
    doc = dict(RESOLVED, pad="")
    doc["pad"] = "x" * (MAX_EVENT_BYTES - len(json.dumps(doc)))
    raw = json.dumps(doc).encode()
    assert len(raw) == MAX_EVENT_BYTES
    assert decode(raw).event_id == "e-1"
    assert decode(raw.decode()).event_id == "e-1"


def test_valid_surrogate_pairs_and_unicode_are_fine():
    assert decode(with_(RESOLVED, contact_id="\U0001F600 c")).contact_id == "\U0001F600 c"  # \ud83d\ude00
    raw = json.dumps(dict(RESOLVED, contact_id="café"), ensure_ascii=False).encode()
    assert decode(raw).contact_id == "café"


# ------------------------------------------------------------------------------ bad input, one class each

NESTED_100K = b"[" * 100_000 + b"]" * 100_000

BAD = [
    # too large
    ("65 KB payload", with_(RESOLVED, pad="x" * 65 * 1024), "too_large"),
    ("65 KB str payload", with_(RESOLVED, pad="x" * 65 * 1024).decode(), "too_large"),
    ("64 KiB + 1 byte", None, "too_large"),  # built in the test
    ("multi-byte str over 64 KiB", json.dumps(dict(RESOLVED, pad="é" * 40_000), ensure_ascii=False), "too_large"),
    ("100000 levels of nesting", NESTED_100K, "too_large"),
    # not JSON
    ("not JSON", b"hello", "not_json"),
    ("truncated", json.dumps(RESOLVED).encode()[:-1], "not_json"),
    ("empty", b"", "not_json"),
    ("whitespace only", b"  \n", "not_json"),
    ("tombstone", None, "not_json"),
    ("trailing garbage", json.dumps(RESOLVED).encode() + b" x", "not_json"),
    ("two objects", json.dumps(RESOLVED).encode() * 2, "not_json"),
    ("invalid UTF-8", b'{"event_id":"\xff"}', "not_json"),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + json.dumps(RESOLVED).encode(), "not_json"),
    ("UTF-16", json.dumps(RESOLVED).encode("utf-16"), "not_json"),
    ("NaN", b'{"event_id":"e","type":"qa.scored","ts":"2026-11-23T09:00:00Z","contact_id":"c",'
            b'"agent_id":"a","score":NaN}', "not_json"),
    ("Infinity", b'{"event_id":"e","type":"qa.scored","ts":"2026-11-23T09:00:00Z","contact_id":"c",'
                 b'"agent_id":"a","score":Infinity}', "not_json"),
    ("-Infinity in an extension", with_(RESOLVED)[:-1] + b', "x": -Infinity}', "not_json"),
    ("deep nesting within the size limit", b"[" * 30_000 + b"]" * 30_000, "not_json"),
    ("deep nesting in an extension", with_(RESOLVED)[:-1] + b', "x": ' + b"{\"a\":" * 10_000 + b"1"
     + b"}" * 10_000 + b"}", "not_json"),
    ("lone surrogate escape", with_(RESOLVED)[:-1] + b', "x": "\\ud800"}', "not_json"),
    ("lone surrogate in str input", json.dumps(RESOLVED)[:-1] + ', "x": "\ud800"}', "not_json"),
    ("single quotes", b"{'event_id': 'e'}", "not_json"),
    ("huge integer literal", with_(RESOLVED)[:-1] + b', "x": ' + b"9" * 5000 + b"}", "not_json"),
    # not an object
    ("array", json.dumps([RESOLVED]).encode(), "not_object"),
    ("string", b'"contact.resolved"', "not_object"),
    ("number", b"42", "not_object"),
    ("null", b"null", "not_object"),
    # unknown type
    ("unknown type", with_(RESOLVED, type="contact.teleported"), "unknown_type"),
    ("type with wrong case", with_(RESOLVED, type="Contact.Resolved"), "unknown_type"),
    ("empty type", with_(RESOLVED, type=""), "unknown_type"),
    # invalid field
    ("missing type", with_(RESOLVED, type=DEL), "invalid_field"),
    ("type not a string", with_(RESOLVED, type=["contact.resolved"]), "invalid_field"),
    ("missing event_id", with_(RESOLVED, event_id=DEL), "invalid_field"),
    ("missing contact_id", with_(RESOLVED, contact_id=DEL), "invalid_field"),
    ("missing ts", with_(RESOLVED, ts=DEL), "invalid_field"),
    ("missing queue_id", with_(EXAMPLES["contact.answered"], queue_id=DEL), "invalid_field"),
    ("missing queues", with_(EXAMPLES["agent.state_changed"], queues=DEL), "invalid_field"),
    ("event_id a number", with_(RESOLVED, event_id=17), "invalid_field"),
    ("empty event_id", with_(RESOLVED, event_id=""), "invalid_field"),
    ("201-char contact_id", with_(RESOLVED, contact_id="c" * 201), "invalid_field"),
    ("contact_id null", with_(RESOLVED, contact_id=None), "invalid_field"),
    ("unknown channel", with_(EXAMPLES["contact.created"], channel="fax"), "invalid_field"),
    ("unknown flow-out reason", with_(EXAMPLES["contact.flowed_out"], reason="bored"), "invalid_field"),
    ("unknown survey", with_(EXAMPLES["survey.responded"], survey="vibes"), "invalid_field"),
    ("unknown state", with_(EXAMPLES["agent.state_changed"], state="lunch"), "invalid_field"),
    ("priority a string", with_(EXAMPLES["contact.queued"], priority="2"), "invalid_field"),
    ("priority fractional", with_(EXAMPLES["contact.queued"], priority=2.5), "invalid_field"),
    ("priority a boolean", with_(EXAMPLES["contact.queued"], priority=True), "invalid_field"),
    ("negative capacity", with_(EXAMPLES["agent.state_changed"], capacity=-1), "invalid_field"),
    ("automated a string", with_(EXAMPLES["message.agent_replied"], automated="false"), "invalid_field"),
    ("automated 0", with_(EXAMPLES["message.agent_replied"], automated=0), "invalid_field"),
    ("queues a string", with_(EXAMPLES["agent.state_changed"], queues="billing"), "invalid_field"),
    ("queues with duplicates", with_(EXAMPLES["agent.state_changed"], queues=["a", "a"]), "invalid_field"),
    ("queues with an empty id", with_(EXAMPLES["agent.state_changed"], queues=["a", ""]), "invalid_field"),
    ("queues with a number", with_(EXAMPLES["agent.state_changed"], queues=["a", 1]), "invalid_field"),
    ("1001 queues", with_(EXAMPLES["agent.state_changed"], queues=[f"q{i}" for i in range(1001)]),
     "invalid_field"),
    ("qa score over 100", with_(EXAMPLES["qa.scored"], score=100.5), "invalid_field"),
    ("qa score negative", with_(EXAMPLES["qa.scored"], score=-1), "invalid_field"),
    ("qa score 1e400 (infinite)", with_(EXAMPLES["qa.scored"])[:-1] + b', "score": 1e400}', "invalid_field"),
    ("scale_max 1e400 (infinite)", with_(EXAMPLES["survey.responded"])[:-1] + b', "scale_max": 1e400}',
     "invalid_field"),
    ("scale_max zero", with_(EXAMPLES["survey.responded"], scale_max=0), "invalid_field"),
    ("survey score above its scale", with_(EXAMPLES["survey.responded"], score=6, scale_max=5), "invalid_field"),
    ("survey score a string", with_(EXAMPLES["survey.responded"], score="4"), "invalid_field"),
    # bad timestamp
    ("ts without offset", with_(RESOLVED, ts="2026-11-23T09:00:05.120"), "bad_timestamp"),
    ("ts date only", with_(RESOLVED, ts="2026-11-23"), "bad_timestamp"),
    ("ts epoch number", with_(RESOLVED, ts=1795424405120), "bad_timestamp"),
    ("ts null", with_(RESOLVED, ts=None), "bad_timestamp"),
    ("ts with a space", with_(RESOLVED, ts="2026-11-23 09:00:05Z"), "bad_timestamp"),
    ("ts basic format", with_(RESOLVED, ts="20261123T090005Z"), "bad_timestamp"),
    ("ts 30 February", with_(RESOLVED, ts="2026-02-30T09:00:05Z"), "bad_timestamp"),
    ("ts leap second", with_(RESOLVED, ts="2026-12-31T23:59:60Z"), "bad_timestamp"),
    ("ts year 0", with_(RESOLVED, ts="0000-01-01T00:00:00Z"), "bad_timestamp"),
    # valid RFC 3339 but outside what the core can place (see MIN_TS_MS / MAX_TS_MS)
    ("ts year 1", with_(RESOLVED, ts="0001-01-01T00:00:00+05:00"), "bad_timestamp"),
    ("ts before 1970", with_(RESOLVED, ts="1969-12-31T23:59:59.999Z"), "bad_timestamp"),
    ("ts 1970 in a later zone", with_(RESOLVED, ts="1970-01-01T00:30:00+01:00"), "bad_timestamp"),
    ("ts year 9999", with_(RESOLVED, ts="9999-01-01T00:00:00Z"), "bad_timestamp"),
    ("ts year 9999 end", with_(RESOLVED, ts="9999-12-31T23:59:59-23:59"), "bad_timestamp"),
    ("ts trailing newline", with_(RESOLVED, ts="2026-11-23T09:00:05Z\n"), "bad_timestamp"),
    ("ts very long", with_(RESOLVED, ts="2026-11-23T09:00:05." + "1" * 100 + "Z"), "bad_timestamp"),
]


@pytest.mark.parametrize("name,raw,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_its_reason(name, raw, reason):
    if name == "64 KiB + 1 byte":
        doc = dict(RESOLVED, pad="")
        doc["pad"] = "x" * (MAX_EVENT_BYTES + 1 - len(json.dumps(doc)))
        raw = json.dumps(doc).encode()
        assert len(raw) == MAX_EVENT_BYTES + 1
    assert reason_of(raw) == reason


def outcome(raw, **kw):
    try:
        return decode(raw, **kw)
    except BadEvent as e:
        return (e.reason, e.detail)


@pytest.mark.parametrize("raw", [b[1] for b in BAD] + [json.dumps(e).encode() for e in EXAMPLES.values()],
                         ids=[b[0] for b in BAD] + list(EXAMPLES))
def test_the_workers_prechecked_decode_has_the_same_outcome_and_error(raw):
    assert outcome(raw, precheck=True) == outcome(raw)


def test_the_workers_decode_leaves_no_reference_cycle_behind():
    """fastjsonschema's uniqueItems check (agent.state_changed's queues) defines a recursive closure per
    call; each is a cycle only the cycle collector frees (the worker freezes long-lived objects out of its
    sight: processor/gc_policy.py). The worker's decode skips it for the ordinary valid event."""
    import gc

    raw = json.dumps({**EXAMPLES["agent.state_changed"], "queues": ["billing", "sales", "support"]}).encode()
    gc.collect()
    gc.disable()
    try:
        for _ in range(100):
            decode(raw, precheck=True)
        assert gc.collect() == 0
        for _ in range(100):
            decode(raw)  # the validator's path: what the precheck avoids (tells the test can see a cycle)
        assert gc.collect() >= 100
    finally:
        gc.enable()


def test_details_name_the_field():
    def detail(raw):
        with pytest.raises(BadEvent) as info:
            decode(raw)
        return info.value.detail

    assert "queue_id" in detail(with_(EXAMPLES["contact.answered"], queue_id=DEL))
    assert "channel" in detail(with_(EXAMPLES["contact.created"], channel="fax"))
    assert "queues[1]" in detail(with_(EXAMPLES["agent.state_changed"], queues=["a", 1]))
    assert "ts" in detail(with_(RESOLVED, ts="2026-11-23T09:00:05"))
    assert "scale_max" in detail(with_(EXAMPLES["survey.responded"], score=6, scale_max=5))


def test_unknown_type_detail_is_bounded():
    with pytest.raises(BadEvent) as info:
        decode(with_(RESOLVED, type="x" * 10_000))
    assert info.value.reason == "unknown_type" and len(info.value.detail) < 200


def test_decode_does_not_mutate_or_keep_defaults():
    raw = with_(EXAMPLES["message.agent_replied"], automated=DEL)
    assert decode(raw).automated is False
    assert decode(raw) == decode(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_never_raises_anything_but_bad_event(raw):
    try:
        assert isinstance(decode(raw), Event)
    except BadEvent as e:
        assert e.reason in REASONS


# ------------------------------------------------------------------------------ differential property

def expected_accept(doc) -> bool:
    """The oracle: jsonschema (reference) accepts with the type's schema, ts parses to a time from
    1970-01-01T00:00:00Z to before 9999-01-01T00:00:00Z, score <= scale_max."""
    t = doc.get("type")
    if not isinstance(t, str) or t not in REF:
        return False
    if not REF[t].is_valid(doc):
        return False
    try:
        when = ts_ms(doc["ts"])
    except ValueError:
        return False
    if not parse_ts_ms("1970-01-01T00:00:00Z") <= when < parse_ts_ms("9999-01-01T00:00:00Z"):
        return False
    if t == "survey.responded" and doc["score"] > doc["scale_max"]:
        return False
    return True


finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), finite, st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.text(max_size=4), c, max_size=3), max_leaves=8)

two = st.integers(0, 99).map(lambda i: f"{i:02d}")
timestamps = st.one_of(
    st.builds(
        lambda y, mo, d, sep, h, mi, s, frac, off: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{off}",
        st.integers(0, 9999), st.sampled_from(["00", "01", "02", "09", "10", "12", "13"]),
        st.sampled_from(["00", "01", "28", "29", "30", "31", "32"]), st.sampled_from(["T", "t", " ", "x"]),
        st.sampled_from(["00", "09", "23", "24"]), st.sampled_from(["00", "59", "60"]),
        st.sampled_from(["00", "05", "59", "60", "61"]),
        st.sampled_from(["", ".1", ".120", ".123456", ".123456789", ".1234567890", "."]),
        st.sampled_from(["Z", "z", "", "+01:00", "-05:30", "+23:59", "+24:00", "+0100", "+01", "-00:00", "Z\n"])),
    st.text(max_size=30),
    st.sampled_from(["2026-11-23T09:00:05.120Z", "2026-02-29T00:00:00Z", "2028-02-29T00:00:00Z"]),
)


def interesting_values(field: str):
    """Values near each field's constraints, plus anything JSON."""
    ids = st.one_of(st.text(min_size=0, max_size=3), st.sampled_from(["", "x" * 200, "x" * 201]),
                    st.text(min_size=199, max_size=202))
    per_field = {
        "event_id": ids, "contact_id": ids, "customer_id": ids, "queue_id": ids, "agent_id": ids,
        "to_queue_id": ids, "issue": ids,
        "ts": timestamps,
        "type": st.sampled_from(list(EVENT_TYPES) + ["contact.unknown", ""]),
        "channel": st.sampled_from(["voice", "chat", "email", "messaging", "social", "ticket", "fax", "Voice"]),
        "reason": st.sampled_from(["timeout", "callback", "voicemail", "overflow", "other"]),
        "survey": st.sampled_from(["csat", "ces", "nps", "complaint", "CSAT"]),
        "state": st.sampled_from(["available", "busy", "acw", "away", "offline", "lunch"]),
        "score": st.one_of(finite, st.integers(-5, 200), st.sampled_from([0, 100, 100.0001, -0.0, 1e6, 1e6 + 1])),
        "scale_max": st.one_of(finite, st.integers(-1, 12), st.sampled_from([0, 0.0, 5e-324, 1e6, 1e6 + 1])),
        "priority": st.one_of(st.integers(-10**20, 10**20), finite, st.sampled_from([1.0, True, None])),
        "capacity": st.one_of(st.integers(-3, 10), finite, st.sampled_from([0.0, -0.0, False, None])),
        "automated": st.sampled_from([True, False, None, 0, 1, "true"]),
        "queues": st.one_of(st.lists(ids, max_size=4), st.lists(st.sampled_from(["a", "b"]), max_size=3),
                            st.lists(json_values, max_size=2)),
    }
    return st.one_of(per_field.get(field, json_values), json_values)


FIELDS = ["event_id", "type", "ts", "contact_id", "channel", "customer_id", "issue", "queue_id", "priority",
          "agent_id", "reason", "to_queue_id", "automated", "survey", "score", "scale_max", "state", "queues",
          "capacity", "x_ext"]


@st.composite
def near_valid_events(draw):
    doc = copy.deepcopy(EXAMPLES[draw(st.sampled_from(EVENT_TYPES))])
    for _ in range(draw(st.integers(0, 4))):
        field = draw(st.sampled_from(FIELDS + list(doc)))
        if draw(st.integers(0, 4)) == 0:
            doc.pop(field, None)
        else:
            doc[field] = draw(interesting_values(field))
    return doc


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid_events() | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6))
@example({**RESOLVED, "ts": "2026-11-23T09:00:05Z\n"})
@example({**RESOLVED, "ts": "2026-02-30T09:00:05Z"})
@example({**EXAMPLES["contact.queued"], "priority": 1e300})
@example({**EXAMPLES["survey.responded"], "score": 5, "scale_max": 5})
def test_decode_accepts_exactly_what_jsonschema_accepts(doc):
    raw = json.dumps(doc).encode()
    want = expected_accept(doc)
    try:
        ev = decode(raw)
    except BadEvent as e:
        assert not want, f"rejected ({e.reason}: {e.detail}) but jsonschema accepts: {doc}"
        assert e.reason in ("unknown_type", "invalid_field", "bad_timestamp")
        return
    assert want, f"accepted but jsonschema rejects: {doc}"
    check_event(ev, doc)


def test_the_oracle_sees_both_sides():
    """Guard against a vacuous property: the generator yields plenty of accepted and rejected events."""
    from hypothesis import find

    find(near_valid_events(), expected_accept)
    find(near_valid_events(), lambda d: not expected_accept(d))


def test_an_event_later_than_the_sources_can_have_sent_is_from_the_future():
    """The worker passes now + max_future_seconds: a later ts is dead-lettered, the limit itself is accepted."""
    doc = {"event_id": "e", "type": "contact.resolved", "ts": "2026-11-23T10:05:00Z", "contact_id": "c"}
    limit = parse_ts_ms("2026-11-23T10:05:00Z")
    assert decode(json.dumps(doc), not_after_ms=limit).ts_ms == limit
    with pytest.raises(BadEvent) as info:
        decode(json.dumps(doc | {"ts": "2026-11-23T10:05:00.001Z"}), not_after_ms=limit)
    assert info.value.reason == "from_the_future" and "0.001 s past" in info.value.detail
    assert decode(json.dumps(doc | {"ts": "2027-11-23T10:05:00Z"})).ts_ms > limit  # no limit given: history


def test_events_and_facts_share_one_copy_of_their_ids_and_names():
    """Kept events are most of a worker's state: the strings many of them carry are held once."""
    from processor.core.events import event_from_state, event_to_state
    from processor.core.segments import fact_from_json

    answered = {"event_id": "e-2", "type": "contact.answered", "ts": "2026-11-23T09:00:01Z", "contact_id": "c-1",
                "queue_id": "billing", "agent_id": "a-7"}
    one = decode(json.dumps(answered).encode())
    two = decode(json.dumps({**answered, "event_id": "e-3"}).encode())
    for field in ("type", "contact_id", "queue_id", "agent_id"):
        assert getattr(one, field) is getattr(two, field)
    assert one.type is EVENT_TYPES[EVENT_TYPES.index("contact.answered")]  # the contract's string, not a copy
    assert one == Event("e-2", "contact.answered", one.ts_ms, "c-1", queue_id="billing", agent_id="a-7")
    rebuilt = event_from_state(json.loads(json.dumps(event_to_state(two))))
    assert rebuilt == two and rebuilt.contact_id is one.contact_id and rebuilt.queue_id is one.queue_id
    agent = decode(json.dumps({"event_id": "e-4", "type": "agent.state_changed", "ts": "2026-11-23T09:00:02Z",
                               "agent_id": "a-7", "state": "available", "queues": ["billing"]}).encode())
    assert agent.agent_id is one.agent_id and agent.queues[0] is one.queue_id
    fact = fact_from_json(json.loads('["seg", "billing", "voice", 1, 2, "answered"]'))
    assert fact == ("seg", "billing", "voice", 1, 2, "answered") and fact[1] is one.queue_id
