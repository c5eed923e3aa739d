"""Fast runtime decoder: one raw Kafka message value to a validated `Event`, or `BadEvent`.

The per-type JSON Schemas in the repo's `schemas/events/` are the single source of truth; they are
compiled once, at import, by fastjsonschema. Steps, cheapest first:

1. size (`too_large`), 2. UTF-8 + JSON, NaN/Infinity rejected (`not_json`), 3. a JSON object
(`not_object`), 4. a known `type` (`unknown_type`), 5. the type's schema (`invalid_field`, or
`bad_timestamp` when the failing field is `ts`), 6. `ts` parsed to epoch ms, from 1970-01-01T00:00:00Z
up to (not including) 9999-01-01T00:00:00Z (`bad_timestamp`), 7. rules a schema cannot express
(`invalid_field`: survey `score` > `scale_max`).

Fields that the contract does not define for an event's type are extensions: accepted and ignored.
An optional field sent as JSON null is treated as absent.
"""
from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import fastjsonschema

from .core.events import AGENT_TYPES, CUSTOMER_TYPES, EVENT_TYPES, Event, parse_ts_ms
from .schemacheck import compile_check

# In the repo (and editable installs) the top-level schemas/; in a wheel, its copy processor/schemas.
SCHEMA_DIR = next(p for p in (Path(__file__).resolve().parent / "schemas", Path(__file__).resolve().parent.parent / "schemas")
                  if p.is_dir())
MAX_EVENT_BYTES = 64 * 1024
# Accepted event times, epoch ms: 1970-01-01T00:00:00Z (inclusive) to 9999-01-01T00:00:00Z (exclusive).
# The core formats interval and day edges with datetime (years 1-9999) and uses 0 as "no time yet":
# a schema-valid time in year 9999 or year 1 would crash it when a record or dead letter is written.
MIN_TS_MS, MAX_TS_MS = 0, 253_370_764_800_000
REASONS = ("too_large", "not_json", "not_object", "unknown_type", "invalid_field", "bad_timestamp", "from_the_future")
ROLLUP_KINDS = ("queue_interval", "experience_interval", "resolution_day", "agent_interval")
# Rollup kinds beyond the contract's four (backward-compatible extensions), with their schemas in schemas/rollups/.
EXTENSION_ROLLUP_KINDS = ("retention_day",)


class BadEvent(Exception):
    """A message that cannot become an Event. `reason` is a bounded label (see REASONS), `detail` human text."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def load_schema(relative: str) -> dict:
    """A schema of the repo's `schemas/` folder, e.g. `load_schema("events/qa.scored.schema.json")`."""
    return json.loads((SCHEMA_DIR / relative).read_text(encoding="utf-8"))


def _compile(schema: dict) -> Callable[[Any], Any]:
    # use_default=False: the decoder must never mutate the message it validates.
    return fastjsonschema.compile(schema, use_default=False)


EVENT_SCHEMAS: dict[str, dict] = {t: load_schema(f"events/{t}.schema.json") for t in EVENT_TYPES}
_VALIDATORS: dict[str, Callable[[Any], Any]] = {t: _compile(s) for t, s in EVENT_SCHEMAS.items()}
_REQUIRED: dict[str, tuple[str, ...]] = {t: tuple(s["required"]) for t, s in EVENT_SCHEMAS.items()}


@lru_cache(maxsize=1)
def _rollup_validators() -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    return tuple((k, _compile(load_schema(f"rollups/{k}.schema.json"))) for k in ROLLUP_KINDS + EXTENSION_ROLLUP_KINDS)


def load_rollup_validators() -> dict[str, Callable[[Any], Any]]:
    """Compiled validators of the four rollup kinds and the extensions (compiled on first call, then cached).

    Each returns the record when valid and raises fastjsonschema.JsonSchemaValueException otherwise.
    """
    return dict(_rollup_validators())


# ------------------------------------------------------------------------------- building Events

def _int(v: Any) -> int | None:
    # The schema accepts 2.0 as an integer (JSON Schema semantics); the core wants a real int.
    return v if v is None or v.__class__ is int else int(v)


_NO_CONTACT = frozenset(AGENT_TYPES + CUSTOMER_TYPES)


def _simple(*names: str) -> Callable[[dict, str, int], Event]:
    """Builder for types whose own fields are required strings copied as they are (shared, see _i)."""
    if not names:
        return lambda o, t, ms: Event(o["event_id"], t, ms, _i(o["contact_id"]))
    if names == ("agent_id",):
        return lambda o, t, ms: Event(o["event_id"], t, ms, _i(o["contact_id"]), agent_id=_i(o["agent_id"]))
    if names == ("queue_id",):
        return lambda o, t, ms: Event(o["event_id"], t, ms, _i(o["contact_id"]), queue_id=_i(o["queue_id"]))
    return lambda o, t, ms: Event(o["event_id"], t, ms, _i(o["contact_id"]), **{n: _i(o[n]) for n in names})


def _i_opt(v: Any) -> Any:
    return v if v is None else _i(v)


# Every string an Event keeps except its event id is one of few values (queue, channel, agent, state)
# or shared by all of a contact's events (contact id, customer id): one copy of each, not one per
# event. Kept events are most of a worker's memory (docs/memory.md#what-made-it-smaller). Mortal interning: a string
# no event holds any more is freed.
_i = sys.intern

_BUILDERS: dict[str, Callable[[dict, str, int], Event]] = {
    "contact.created": lambda o, t, ms: Event(
        o["event_id"], t, ms, _i(o["contact_id"]), channel=_i(o["channel"]), customer_id=_i(o["customer_id"]),
        issue=_i_opt(o.get("issue"))),
    "contact.queued": lambda o, t, ms: Event(
        o["event_id"], t, ms, _i(o["contact_id"]), queue_id=_i(o["queue_id"]), priority=_int(o.get("priority"))),
    "contact.answered": _simple("queue_id", "agent_id"),
    "contact.abandoned": _simple("queue_id"),
    "contact.flowed_out": _simple("queue_id", "reason"),
    "contact.hold_started": _simple("agent_id"),
    "contact.hold_ended": _simple("agent_id"),
    "contact.transferred": _simple("agent_id", "to_queue_id"),
    "contact.wrapup_started": _simple("agent_id"),
    "contact.wrapup_ended": _simple("agent_id"),
    "contact.resolved": _simple(),
    "contact.reopened": _simple(),
    "message.agent_replied": lambda o, t, ms: Event(
        o["event_id"], t, ms, _i(o["contact_id"]), agent_id=_i(o["agent_id"]), automated=o.get("automated") is True),
    "message.customer_replied": _simple(),
    "survey.responded": lambda o, t, ms: Event(
        o["event_id"], t, ms, _i(o["contact_id"]), survey=_i(o["survey"]), score=float(o["score"]),
        scale_max=float(o["scale_max"])),
    "qa.scored": lambda o, t, ms: Event(
        o["event_id"], t, ms, _i(o["contact_id"]), agent_id=_i(o["agent_id"]), score=float(o["score"])),
    "agent.state_changed": lambda o, t, ms: Event(
        o["event_id"], t, ms, agent_id=_i(o["agent_id"]), state=_i(o["state"]),
        queues=tuple(_i(q) for q in o["queues"]), capacity=_int(o.get("capacity"))),
    "customer.churned": lambda o, t, ms: Event(o["event_id"], t, ms, customer_id=_i(o["customer_id"])),
}
assert _BUILDERS.keys() == set(EVENT_TYPES) and _NO_CONTACT <= _BUILDERS.keys()


def _fast_path(t: str) -> Callable[[Any], Any]:
    """The type's validator behind a pre-check that says only "certainly valid" or "cannot tell"
    (processor/schemacheck.py): the validator still decides, and words the error, whenever the
    pre-check cannot tell, so no outcome or message changes; the ordinary event skips it."""
    validate, certainly_valid = _VALIDATORS[t], compile_check(EVENT_SCHEMAS[t])
    if certainly_valid is None:
        return validate

    def checked(obj: Any) -> None:
        if not certainly_valid(obj):
            validate(obj)
    return checked


# Per type: (schema validator, builder, required fields). One dict lookup per event.
_BY_TYPE = {t: (_VALIDATORS[t], _BUILDERS[t], _REQUIRED[t], t) for t in EVENT_TYPES}
_PRECHECKED = {t: (_fast_path(t), _BUILDERS[t], _REQUIRED[t], t) for t in EVENT_TYPES}


@contextmanager
def prechecked() -> Iterator[None]:
    """Within it, decode() lets the ordinary valid event skip the schema validator (see _fast_path):
    the same events, the same errors, fewer microseconds. `kpi replay` decodes under it. (Not the
    default only so that coverage-guided fuzzing keeps seeing the validators' branches on valid input.)"""
    global _BY_TYPE
    saved, _BY_TYPE = _BY_TYPE, _PRECHECKED
    try:
        yield
    finally:
        _BY_TYPE = saved


# ------------------------------------------------------------------------------- decoding

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_loads = _DECODER.decode
_scan_once = _DECODER.scan_once  # the C scanner: skips JSONDecoder.decode's Python-level wrapping
_trailing_ws = json.decoder.WHITESPACE.match
# A JSON escape of a UTF-16 surrogate; a lone one cannot be encoded as UTF-8 (Kafka, Redis, /metrics).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SchemaError = fastjsonschema.JsonSchemaValueException


def _schema_error(e: fastjsonschema.JsonSchemaValueException, obj: dict, required: tuple[str, ...]) -> BadEvent:
    name = e.name or "data"
    field = name[5:] if name.startswith("data.") else ""
    if e.rule == "required":
        missing = ", ".join(k for k in required if k not in obj)
        return BadEvent("invalid_field", f"missing required field {missing}")
    if field == "ts":
        if e.rule == "pattern":  # the value is at most 40 characters here (maxLength is checked first)
            why = f"{obj['ts']!r} is not RFC 3339 with a UTC offset"
        else:
            why = e.message[len(name):].strip()
        return BadEvent("bad_timestamp", f"ts {why} (expected e.g. 2026-11-23T09:00:05.120Z)")
    why = e.message[len(name):].strip() if e.message.startswith(name) else e.message
    return BadEvent("invalid_field", f"{field or 'event'} {why}")


def decode(raw: bytes | str, not_after_ms: int | None = None, *, precheck: bool = False) -> Event:
    """Decode and validate one message value. Raises BadEvent; never anything else for any input.

    `not_after_ms`: the latest event time a live source can have sent (the worker passes its wall
    clock plus `max_future_seconds`); a later `ts` is `from_the_future`. One such event would
    otherwise move stream time ahead and make every true event after it "too late".

    `precheck=True`: as within `prechecked()`, the ordinary valid event skips the schema validator
    (same outcomes and errors). The worker decodes so: besides microseconds, fastjsonschema's
    `uniqueItems` check (agent.state_changed's `queues`) defines a recursive closure on every call, a
    reference cycle that only the cycle collector frees: 2,800 such cycles a second in a 30-day
    catch-up (processor/gc_policy.py).
    """
    if raw.__class__ is not bytes:
        if isinstance(raw, str):
            if len(raw) > MAX_EVENT_BYTES:  # a character is at least one byte
                raise BadEvent("too_large", f"message is over {MAX_EVENT_BYTES} bytes")
            try:
                raw = raw.encode("utf-8")
            except UnicodeEncodeError:
                raise BadEvent("not_json", "text is not valid Unicode (lone surrogate)") from None
        elif isinstance(raw, (bytearray, memoryview)):
            raw = bytes(raw)
        elif raw is None:
            raise BadEvent("not_json", "message has no value (null / tombstone)")
        else:
            raise BadEvent("not_json", f"message value is a {type(raw).__name__}, not bytes or str")
    if len(raw) > MAX_EVENT_BYTES:
        raise BadEvent("too_large", f"message is {len(raw)} bytes, over {MAX_EVENT_BYTES}")
    try:
        text = raw.decode("utf-8")
        try:
            obj, end = _scan_once(text, 0)
        except StopIteration:  # no value at 0 (leading whitespace, empty...): the full decoder says why
            obj = _loads(text)
        else:
            if end != len(text) and _trailing_ws(text, end).end() != len(text):
                raise ValueError(f"extra data after the JSON value at char {end}")
    except RecursionError:
        raise BadEvent("not_json", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, int too long
        raise BadEvent("not_json", str(exc)[:200]) from None
    if obj.__class__ is not dict:
        raise BadEvent("not_object", f"JSON value is {type(obj).__name__}, not an object")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise BadEvent("not_json", "string with a lone UTF-16 surrogate escape") from None
        except RecursionError:
            raise BadEvent("not_json", "JSON nested too deeply") from None

    t = obj.get("type")
    entry = (_PRECHECKED if precheck else _BY_TYPE).get(t) if t.__class__ is str else None
    if entry is None:
        if t.__class__ is str:
            raise BadEvent("unknown_type", f"unknown event type {t[:100]!r}")
        if "type" not in obj:
            raise BadEvent("invalid_field", "missing required field type")
        raise BadEvent("invalid_field", f"type must be string, not {type(t).__name__}")
    validate, build, required, canonical = entry  # canonical: the type string every event shares
    try:
        validate(obj)
    except _SchemaError as e:
        raise _schema_error(e, obj, required) from None

    ts = obj["ts"]
    try:
        ms = parse_ts_ms(ts)
    except (ValueError, OverflowError):
        try:
            ms = parse_ts_ms(ts.upper())  # RFC 3339 allows a lower-case 't' and 'z'
        except (ValueError, OverflowError) as exc:
            raise BadEvent("bad_timestamp", f"ts {ts!r}: {exc}") from None
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        raise BadEvent("bad_timestamp", f"ts {ts!r} is outside 1970-01-01T00:00:00Z .. 9999-01-01T00:00:00Z")
    if not_after_ms is not None and ms > not_after_ms:
        raise BadEvent("from_the_future", f"ts {ts!r} is {(ms - not_after_ms) / 1000:.3f} s past the latest "
                                          "time a source can have sent (now + max_future_seconds)")

    if t == "survey.responded" and obj["score"] > obj["scale_max"]:
        raise BadEvent("invalid_field", "score is greater than scale_max")
    return build(obj, canonical, ms)
