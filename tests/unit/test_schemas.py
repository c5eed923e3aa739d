"""The JSON Schemas in schemas/: well-formed, complete against the contract, examples valid, README in sync.

jsonschema is the reference validator; fastjsonschema (what the processor runs) must agree with it.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from processor.core.events import AGENT_STATES, AGENT_TYPES, CHANNELS, CUSTOMER_TYPES, EVENT_TYPES
from processor.decode import EXTENSION_ROLLUP_KINDS, ROLLUP_KINDS, decode, load_rollup_validators

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
README = (SCHEMAS / "README.md").read_text(encoding="utf-8")


def load(rel: str) -> dict:
    return json.loads((SCHEMAS / rel).read_text(encoding="utf-8"))


def event_schema(t: str) -> dict:
    return load(f"events/{t}.schema.json")


def rollup_schema(k: str) -> dict:
    return load(f"rollups/{k}.schema.json")


def ref(schema: dict) -> Draft202012Validator:
    return Draft202012Validator(schema)


ALL_SCHEMA_FILES = sorted(p.relative_to(SCHEMAS).as_posix() for p in SCHEMAS.glob("*/*.schema.json"))
EVENT_EXAMPLES = sorted((EXAMPLES / "events").glob("*.json"))
ROLLUP_EXAMPLES = sorted((EXAMPLES / "rollups").glob("*.json"))

# Contract §1: each type's own fields (required, optional).
CONTRACT_EVENT_FIELDS = {
    "contact.created": ({"channel", "customer_id"}, {"issue"}),
    "contact.queued": ({"queue_id"}, {"priority"}),
    "contact.answered": ({"queue_id", "agent_id"}, set()),
    "contact.abandoned": ({"queue_id"}, set()),
    "contact.flowed_out": ({"queue_id", "reason"}, set()),
    "contact.hold_started": ({"agent_id"}, set()),
    "contact.hold_ended": ({"agent_id"}, set()),
    "contact.transferred": ({"agent_id", "to_queue_id"}, set()),
    "contact.wrapup_started": ({"agent_id"}, set()),
    "contact.wrapup_ended": ({"agent_id"}, set()),
    "contact.resolved": (set(), set()),
    "contact.reopened": (set(), set()),
    "message.agent_replied": ({"agent_id"}, {"automated"}),
    "message.customer_replied": (set(), set()),
    "survey.responded": ({"survey", "score", "scale_max"}, set()),
    "qa.scored": ({"agent_id", "score"}, set()),
    "agent.state_changed": ({"agent_id", "state", "queues"}, {"capacity"}),
    "customer.churned": ({"customer_id"}, set()),
}

# Contract §3: required fields of each rollup kind, exactly.
ROLLUP_COMMON = ["kind", "interval_start", "interval_end", "version"]
CONTRACT_ROLLUP_FIELDS = {
    "queue_interval": [
        "queue_id", "channel", "threshold_seconds", "offered", "answered", "abandoned", "short_abandoned",
        "flowed_out", "answered_within_threshold", "abandoned_within_threshold", "service_level",
        "asa_seconds", "abandon_rate", "max_wait_seconds", "handled", "aht_seconds", "talk_seconds",
        "hold_seconds", "acw_seconds"],
    "experience_interval": [
        "queue_id", "channel", "frt_seconds", "ttr_seconds", "csat", "ces", "nps", "complaint_csat", "qa_score"],
    "resolution_day": [
        "queue_id", "channel", "first_contacts", "first_contact_resolved", "fcr", "contacts", "repeats",
        "repeat_rate", "resolved", "reopened", "reopen_rate", "window_days"],
    "agent_interval": ["agent_id", "seconds_by_state", "utilization", "occupancy", "handled", "aht_seconds"],
}


# ------------------------------------------------------------------------------ well-formedness

@pytest.mark.parametrize("rel", ALL_SCHEMA_FILES)
def test_schema_is_valid_draft_2020_12(rel):
    schema = load(rel)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    fastjsonschema.compile(schema, use_default=False)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is True  # extensions stay allowed
    assert set(schema["required"]) <= set(schema["properties"])


def _walk(schema: dict, path: str):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("rel", ALL_SCHEMA_FILES)
def test_every_string_and_array_is_bounded(rel):
    for path, s in _walk(load(rel), rel):
        types = s.get("type", [])
        types = [types] if isinstance(types, str) else types
        if "string" in types:
            assert "enum" in s or "maxLength" in s, f"{path}: unbounded string"
        if "array" in types:
            assert "maxItems" in s, f"{path}: unbounded array"


def test_one_schema_per_contract_type_and_kind():
    assert {p.name.removesuffix(".schema.json") for p in (SCHEMAS / "events").glob("*.schema.json")} == (
        set(EVENT_TYPES) | {"envelope"})
    assert {p.name.removesuffix(".schema.json") for p in (SCHEMAS / "rollups").glob("*.schema.json")} == set(
        ROLLUP_KINDS) | set(EXTENSION_ROLLUP_KINDS)
    assert set(CONTRACT_EVENT_FIELDS) == set(EVENT_TYPES)


# ------------------------------------------------------------------------------ events vs the contract

@pytest.mark.parametrize("t", EVENT_TYPES)
def test_event_schema_fields_match_the_contract(t):
    s = event_schema(t)
    own_required, own_optional = CONTRACT_EVENT_FIELDS[t]
    common = {"event_id", "type", "ts"} | (set() if t in AGENT_TYPES + CUSTOMER_TYPES else {"contact_id"})
    assert set(s["required"]) == common | own_required
    assert set(s["properties"]) == common | own_required | own_optional
    assert s["properties"]["type"] == {"const": t, "description": "Event type."}


@pytest.mark.parametrize("t", EVENT_TYPES)
def test_common_fields_are_the_envelope_definitions(t):
    env = load("events/envelope.schema.json")["properties"]
    props = event_schema(t)["properties"]
    for name in ("event_id", "ts", "contact_id"):
        if name in props:
            assert props[name] == env[name], name


def test_envelope_lists_every_type():
    env = load("events/envelope.schema.json")
    assert env["properties"]["type"]["enum"] == list(EVENT_TYPES)
    assert env["required"] == ["event_id", "type", "ts"]


def test_enumerations_match_the_core():
    assert event_schema("contact.created")["properties"]["channel"]["enum"] == list(CHANNELS)
    assert event_schema("agent.state_changed")["properties"]["state"]["enum"] == list(AGENT_STATES)
    assert event_schema("contact.flowed_out")["properties"]["reason"]["enum"] == [
        "timeout", "callback", "voicemail", "overflow"]
    assert event_schema("survey.responded")["properties"]["survey"]["enum"] == ["csat", "ces", "nps", "complaint"]


ID_FIELDS = ("event_id", "contact_id", "queue_id", "agent_id", "customer_id", "issue", "to_queue_id")


@pytest.mark.parametrize("t", EVENT_TYPES)
def test_ids_are_non_empty_and_at_most_200(t):
    props = event_schema(t)["properties"]
    for name in ID_FIELDS:
        if name in props:
            assert props[name]["minLength"] == 1 and props[name]["maxLength"] == 200, name
    if "queues" in props:
        q = props["queues"]
        assert q["items"]["minLength"] == 1 and q["items"]["maxLength"] == 200
        assert q["uniqueItems"] is True and q["maxItems"] == 1000


# ------------------------------------------------------------------------------ the ts pattern

GOOD_TS = [
    "2026-11-23T09:00:05.120Z", "2026-11-23T09:00:05Z", "2026-11-23T10:00:05.120+01:00",
    "2026-11-23T04:00:05-05:00", "2026-11-23T09:00:05.123456789Z", "2026-11-23t09:00:05z",
    "2026-11-23T09:00:05-00:00", "2026-11-23T09:00:05.1+23:59",
]
BAD_TS = [
    "2026-11-23T09:00:05", "2026-11-23 09:00:05Z", "20261123T090005Z", "2026-11-23T09:00Z", "2026-11-23",
    "2026-11-23T09:00:05.Z", "2026-11-23T09:00:05.1234567890Z", "2026-11-23T09:00:05+0100",
    "2026-11-23T09:00:05+24:00", "2026-13-23T09:00:05Z", "2026-11-32T09:00:05Z", "2026-11-23T24:00:05Z",
    "2026-11-23T09:60:05Z", "2026-11-23T09:00:05ZZ", " 2026-11-23T09:00:05Z", "2026-11-23T09:00:05Z ",
    "２０２６-11-23T09:00:05Z", "+2026-11-23T09:00:05Z", "",
]


@pytest.mark.parametrize("ts", GOOD_TS)
def test_ts_pattern_accepts_rfc3339_with_offset(ts):
    doc = {"event_id": "e", "type": "contact.resolved", "ts": ts, "contact_id": "c"}
    assert ref(event_schema("contact.resolved")).is_valid(doc)
    assert decode(json.dumps(doc)).type == "contact.resolved"


@pytest.mark.parametrize("ts", BAD_TS)
def test_ts_pattern_rejects_everything_else(ts):
    doc = {"event_id": "e", "type": "contact.resolved", "ts": ts, "contact_id": "c"}
    assert not ref(event_schema("contact.resolved")).is_valid(doc)


# ------------------------------------------------------------------------------ examples

def test_every_type_and_kind_has_an_example():
    assert {p.stem for p in EVENT_EXAMPLES} == set(EVENT_TYPES)
    assert {p.stem for p in ROLLUP_EXAMPLES} == set(ROLLUP_KINDS) | set(EXTENSION_ROLLUP_KINDS)


@pytest.mark.parametrize("path", EVENT_EXAMPLES, ids=lambda p: p.stem)
def test_event_example_validates_with_reference_validator_and_decoder(path):
    doc = json.loads(path.read_text())
    assert doc["type"] == path.stem
    ref(event_schema(path.stem)).validate(doc)
    ref(load("events/envelope.schema.json")).validate(doc)
    ev = decode(path.read_bytes())
    assert ev.type == path.stem and ev.event_id == doc["event_id"]


@pytest.mark.parametrize("path", ROLLUP_EXAMPLES, ids=lambda p: p.stem)
def test_rollup_example_validates_with_reference_and_fast_validator(path):
    doc = json.loads(path.read_text())
    assert doc["kind"] == path.stem
    ref(rollup_schema(path.stem)).validate(doc)
    load_rollup_validators()[path.stem](doc)


def test_rollup_examples_are_arithmetically_consistent():
    q = json.loads((EXAMPLES / "rollups/queue_interval.json").read_text())
    assert q["offered"] == q["answered"] + q["abandoned"] + q["flowed_out"]
    sl = q["service_level"]
    assert sl["answered_over_offered"] == pytest.approx(
        q["answered_within_threshold"] / (q["offered"] - q["short_abandoned"]))
    assert sl["answered_over_answered"] == pytest.approx(q["answered_within_threshold"] / q["answered"])
    assert sl["abandons_positive"] == pytest.approx(
        (q["answered_within_threshold"] + q["abandoned_within_threshold"]) / (q["answered"] + q["abandoned"]))
    assert q["abandon_rate"] == pytest.approx(
        (q["abandoned"] - q["short_abandoned"]) / (q["offered"] - q["short_abandoned"]))
    assert q["aht_seconds"] == pytest.approx(
        (q["talk_seconds"] + q["hold_seconds"] + q["acw_seconds"]) / q["handled"])
    r = json.loads((EXAMPLES / "rollups/resolution_day.json").read_text())
    assert r["fcr"] == pytest.approx(r["first_contact_resolved"] / r["first_contacts"])
    assert r["repeat_rate"] == pytest.approx(r["repeats"] / r["contacts"])
    assert r["reopen_rate"] == pytest.approx(r["reopened"] / r["resolved"])
    assert r["first_contacts"] + r["repeats"] == r["contacts"]
    a = json.loads((EXAMPLES / "rollups/agent_interval.json").read_text())
    s = a["seconds_by_state"]
    handling = s["busy"] + s["acw"]
    assert a["utilization"] == pytest.approx(handling / (handling + s["available"] + s["away"]))
    assert a["occupancy"] == pytest.approx(handling / (handling + s["available"]))


# ------------------------------------------------------------------------------ rollups vs the contract

@pytest.mark.parametrize("kind", ROLLUP_KINDS)
def test_rollup_required_fields_are_exactly_the_contract(kind):
    s = rollup_schema(kind)
    assert s["required"] == ROLLUP_COMMON + CONTRACT_ROLLUP_FIELDS[kind]
    assert s["properties"]["kind"]["const"] == kind
    assert s["properties"]["version"] == {**s["properties"]["version"], "type": "integer", "minimum": 1}


def _example(kind: str) -> dict:
    return json.loads((EXAMPLES / f"rollups/{kind}.json").read_text())


def _set(doc: dict, dotted: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    target = doc
    for p in parents:
        target = target[p]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()

ROLLUP_CASES = [
    # (kind, field, value, valid?)
    ("queue_interval", "service_level.answered_over_offered", None, True),
    ("queue_interval", "service_level.answered_over_offered", 1.0, True),
    ("queue_interval", "service_level.answered_over_offered", 1.01, False),
    ("queue_interval", "service_level.abandons_positive", -0.1, False),
    ("queue_interval", "service_level.answered_over_answered", _DELETE, False),
    ("queue_interval", "service_level_target", _DELETE, True),
    ("queue_interval", "service_level_target", 1.5, False),
    ("queue_interval", "service_level", None, False),
    ("queue_interval", "abandon_rate", None, True),
    ("queue_interval", "abandon_rate", "0.5", False),
    ("queue_interval", "offered", -1, False),
    ("queue_interval", "offered", 2.5, False),
    ("queue_interval", "offered", True, False),
    ("queue_interval", "asa_seconds", None, True),
    ("queue_interval", "asa_seconds", -1, False),
    ("queue_interval", "max_wait_seconds", None, True),
    ("queue_interval", "talk_seconds", None, False),
    ("queue_interval", "channel", "unknown", True),
    ("queue_interval", "channel", "fax", False),
    ("queue_interval", "short_abandon_seconds", _DELETE, True),
    ("queue_interval", "version", 0, False),
    ("queue_interval", "version", 7, True),
    ("queue_interval", "interval_start", "2026-11-23T10:00:00+01:00", False),
    ("queue_interval", "interval_start", "2026-11-23T09:00:00Z", True),
    ("queue_interval", "interval_end", "2026-11-23T09:15:00", False),
    ("queue_interval", "kind", "agent_interval", False),
    ("queue_interval", "queue_id", "", False),
    ("queue_interval", "queue_id", "q" * 201, False),
    ("experience_interval", "frt_seconds.p50", None, True),
    ("experience_interval", "frt_seconds.count", _DELETE, False),
    ("experience_interval", "frt_seconds.p90", -3, False),
    ("experience_interval", "csat.value", 1.2, False),
    ("experience_interval", "csat.count", _DELETE, False),
    ("experience_interval", "csat", 0.8, False),
    ("experience_interval", "nps.value", -100, True),
    ("experience_interval", "nps.value", 100.5, False),
    ("experience_interval", "qa_score.value", 100, True),
    ("experience_interval", "qa_score.value", 101, False),
    ("experience_interval", "ttr_business_seconds", {"p50": 1.0, "p75": 2.0, "p90": 3.0, "count": 3}, True),
    ("experience_interval", "ttr_business_seconds", {"p50": 1.0}, False),
    ("resolution_day", "fcr", None, True),
    ("resolution_day", "window_days", 0, False),
    ("resolution_day", "window_days", 30, True),
    ("resolution_day", "queue_id", "none", True),
    ("resolution_day", "repeats", -2, False),
    ("agent_interval", "seconds_by_state.offline", _DELETE, False),
    ("agent_interval", "seconds_by_state.training", 60.0, True),
    ("agent_interval", "seconds_by_state.training", -1, False),
    ("agent_interval", "utilization", None, True),
    ("agent_interval", "occupancy", 2, False),
    ("agent_interval", "aht_seconds", None, True),
    ("agent_interval", "extension_field", {"anything": [1, 2]}, True),
]


@pytest.mark.parametrize("kind,field,value,valid", ROLLUP_CASES,
                         ids=[f"{k}:{f}:{'del' if v is _DELETE else v!r}"[:60] for k, f, v, _ in ROLLUP_CASES])
def test_rollup_constraints(kind, field, value, valid):
    doc = _set(_example(kind), field, value)
    assert ref(rollup_schema(kind)).is_valid(doc) is valid
    fast = load_rollup_validators()[kind]
    if valid:
        fast(doc)
    else:
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            fast(doc)


@pytest.mark.parametrize("kind", ROLLUP_KINDS)
def test_counts_are_never_null(kind):
    """Ratios, means and percentiles may be null (zero denominator); counts never are."""
    s = rollup_schema(kind)
    for name, prop in s["properties"].items():
        if prop.get("type") == "integer":
            assert not ref(s).is_valid({**_example(kind), name: None}), name


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=64), st.text(max_size=5),
    st.sampled_from(["2026-11-23T09:00:00.000Z", "unknown", "voice", "none", "2026-11-23T09:00:00Z\n"]),
)
_json_values = st.recursive(_json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.text(max_size=3), c, max_size=3), max_leaves=6)


def _paths(doc: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in doc.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _paths(v, prefix + k + ".")
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(ROLLUP_KINDS), data=st.data())
def test_fast_rollup_validator_agrees_with_reference(kind, data):
    doc = _example(kind)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc) + ["extension"]))
        value = data.draw(st.one_of(st.just(_DELETE), _json_values))
        try:
            doc = _set(doc, path, value)
        except (KeyError, TypeError):
            continue
    expected = ref(rollup_schema(kind)).is_valid(doc)
    # Python's re lets "$" match before a final newline (jsonschema); fastjsonschema and ECMA 262 do not.
    if any(isinstance(v, str) and v.endswith("\n") for v in (doc.get("interval_start"), doc.get("interval_end"))):
        expected = False
    try:
        load_rollup_validators()[kind](doc)
        got = True
    except fastjsonschema.JsonSchemaValueException:
        got = False
    assert got == expected, doc


# ------------------------------------------------------------------------------ README

def _readme_json_blocks() -> list[dict]:
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", README, flags=re.S)]


def test_readme_documents_every_type_kind_and_field():
    for t in EVENT_TYPES:
        assert f"### `{t}`" in README, t
        for name in event_schema(t)["properties"]:
            assert f"`{name}`" in README, (t, name)
    for k in ROLLUP_KINDS:
        assert f"### `{k}`" in README, k
        for path, _ in _walk(rollup_schema(k), ""):
            if path and not path.endswith(".*"):
                assert f"`{path[1:]}`" in README or path[1:] in ("kind", "interval_start", "interval_end", "version")
    for reason in ("too_large", "not_json", "not_object", "unknown_type", "invalid_field", "bad_timestamp"):
        assert f"`{reason}`" in README


def test_readme_examples_are_the_example_files_and_validate():
    blocks = _readme_json_blocks()
    files = [json.loads(p.read_text()) for p in EVENT_EXAMPLES + ROLLUP_EXAMPLES]
    for f in files:
        assert f in blocks, f"example file not shown in README: {f.get('type') or f.get('kind')}"
    for b in blocks:
        if "type" in b:
            ref(event_schema(b["type"])).validate(b)
            decode(json.dumps(b))
        else:
            ref(rollup_schema(b["kind"])).validate(b)
            load_rollup_validators()[b["kind"]](b)
