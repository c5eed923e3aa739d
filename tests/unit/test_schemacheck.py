"""The decoder's fast pre-check (processor/schemacheck.py) may only ever say "valid" when the
schema's fastjsonschema validator agrees: it must change no outcome and no message of decode."""
from __future__ import annotations

import json
import math

import fastjsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.decode import EVENT_SCHEMAS, SCHEMA_DIR, _VALIDATORS
from processor.schemacheck import compile_check

CHECKS = {t: compile_check(s) for t, s in EVENT_SCHEMAS.items()}
EXAMPLES = {t: json.loads((SCHEMA_DIR / "examples" / "events" / f"{t}.json").read_text()) for t in EVENT_SCHEMAS}


def _accepts(validate, obj) -> bool:
    try:
        validate(obj)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_every_event_type_has_a_fast_path_and_it_accepts_the_examples():
    for t, check in CHECKS.items():
        assert check is not None, t
        assert check(EXAMPLES[t]) is True, t


# Values close to the edges of what the schemas allow, and well past them.
_TS = st.sampled_from(["2026-11-23T09:00:05.120Z", "2026-11-23T09:00:05Z", "2026-11-23t09:00:05z",
                       "2026-11-23T09:00:05.120+01:00", "2026-11-23T09:00:05.120Z\n", "2026-11-23 09:00:05Z",
                       "2026-13-23T09:00:05Z", "2026-11-23T24:00:00Z", "2026-11-23T09:00:60Z", "２026-11-23T09:00:05Z",
                       "2026-11-23T09:00:05.1234567890Z", "2026-02-30T00:00:00Z", ""])
_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-3, max_value=3), st.integers(), st.integers(min_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 2.0, 1e6, 1e6 + 1, 1e-300, 5.0, 7.0, 10.0]),
    st.text(max_size=3), st.text(min_size=199, max_size=202), st.sampled_from(["csat", "ces", "nps", "complaint",
    "available", "busy", "acw", "away", "offline", "voice", "chat", "ticket", "timeout", "x\n", "\n"]), _TS)
_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=4), st.lists(st.sampled_from(["q1", "q2", "q1"]), max_size=4),
                   st.dictionaries(st.text(max_size=2), _SCALAR, max_size=2))


@st.composite
def _mutated(draw):
    t = draw(st.sampled_from(sorted(EVENT_SCHEMAS)))
    obj = dict(EXAMPLES[t])
    keys = sorted(set(obj) | set(EVENT_SCHEMAS[t]["properties"]) | {"extra"})
    for key in draw(st.lists(st.sampled_from(keys), max_size=4)):
        if draw(st.booleans()) and key in obj:
            del obj[key]
        else:
            obj[key] = draw(_VALUE)
    return t, obj


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_the_fast_path_never_accepts_what_the_validator_rejects(case):
    t, obj = case
    if CHECKS[t](obj):
        assert _accepts(_VALIDATORS[t], obj), (t, obj)


def test_the_fast_path_on_hand_picked_edges():
    base = EXAMPLES["survey.responded"]
    for score in (math.inf, -math.inf, math.nan, True, -0.0, 1e6, 1e6 + 1, 10**30):
        obj = {**base, "score": score}
        if CHECKS["survey.responded"](obj):
            assert _accepts(_VALIDATORS["survey.responded"], obj), score
    for capacity in (True, 2.0, -1, None, 0, 10**20):
        obj = {**EXAMPLES["agent.state_changed"], "capacity": capacity}
        if CHECKS["agent.state_changed"](obj):
            assert _accepts(_VALIDATORS["agent.state_changed"], obj), capacity
    obj = {**EXAMPLES["agent.state_changed"], "queues": ["a", "a"]}
    assert not CHECKS["agent.state_changed"](obj) and not _accepts(_VALIDATORS["agent.state_changed"], obj)
