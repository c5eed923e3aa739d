"""Coverage-guided fuzz target (atheris / libFuzzer) for processor.decode, run by test_decoder_fuzz.py.

    python tests/fuzz/decoder_target.py CORPUS_DIR -seed=1 -runs=30000 -dict=tests/fuzz/decode.dict

Every input is one Kafka message value. The invariant, checked on every input:

* `decode` returns an `Event` or raises `BadEvent` whose reason is one of `REASONS` and whose
  detail is a short string; no other exception type ever escapes;
* a rejected input becomes a dead-letter record that is valid JSON and carries the input whole
  (byte for byte when the input is UTF-8);
* an accepted event has a time the core can place, and goes through a fresh core `Pipeline`
  (with a later event that moves stream time past the lateness, then a flush) without any
  exception: every record and dead letter it yields serialises.

Any other outcome is an uncaught exception, which libFuzzer reports as a crash (exit code != 0,
input saved under -artifact_prefix). A JSON summary of what was seen (counts by reason, accepted
events by type) is written to $KPI_FUZZ_SUMMARY every 500 inputs, so that the test can check the
run was not vacuous.

The mutator is structure-aware 70 % of the time: it parses the input as JSON and sets, drops or
retypes one field with a hostile value (huge strings, deep nesting, NaN, floats for ints, times
in year 1 / 9999 and days of skew, other event types); the rest is libFuzzer's own byte
mutation. Both are deterministic for a given -seed.

KPI_FUZZ_WITHOUT_TS_BOUNDS=1 lifts the decoder's time bounds (MIN_TS_MS / MAX_TS_MS), to show
that the fuzzer finds the core crash those bounds prevent (a record edge past year 9999).
"""
from __future__ import annotations

import json
import os
import random
import sys
from collections import Counter

import atheris

with atheris.instrument_imports(include=["processor"]):
    from processor import deadletter
    from processor import decode as decode_module
    from processor.core.events import Event
    from processor.core.pipeline import Pipeline
    from processor.core.settings import EngineSettings, QueueSettings
    from processor.decode import MAX_EVENT_BYTES, MAX_TS_MS, MIN_TS_MS, REASONS, BadEvent, decode

# The validators fastjsonschema generated at import are plain functions: instrument them too, so
# that libFuzzer's coverage sees the branches of every event type's schema.
for _validate in decode_module._VALIDATORS.values():
    atheris.instrument_func(_validate)

WITHOUT_TS_BOUNDS = os.environ.get("KPI_FUZZ_WITHOUT_TS_BOUNDS") == "1"
if WITHOUT_TS_BOUNDS:
    decode_module.MIN_TS_MS, decode_module.MAX_TS_MS = -(2**63), 2**63

# A zone far east and one far west: local day edges sit a day apart from UTC ones.
ENGINE = EngineSettings(interval_minutes=15, lateness_ms=30_000, retention_ms=7_200_000,
                        queues=(("billing", QueueSettings(time_zone="Pacific/Kiritimati")),
                                ("sales", QueueSettings(time_zone="Etc/GMT+12"))),
                        recontact_window_ms=7 * 86_400_000)

SUMMARY = os.environ.get("KPI_FUZZ_SUMMARY")
seen: Counter = Counter()


def _write_summary() -> None:
    if SUMMARY:
        tmp = SUMMARY + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(seen), f, sort_keys=True)
        os.replace(tmp, SUMMARY)


def _through_core(ev: Event) -> None:
    p = Pipeline(ENGINE)
    out = []
    for e in (ev, Event(f"{ev.event_id}-later", "contact.resolved", ev.ts_ms + 60_000, "fuzz-tick")):
        records, dead = p.feed(e)
        out += records
        for dl in dead:
            assert dl.reason in ("impossible_order", "too_late"), dl.reason
            json.loads(deadletter.dumps(deadletter.from_core(dl)))
    out += p.finish(flush=True)
    for rec in out:
        json.dumps(rec, allow_nan=False)


def TestOneInput(data: bytes) -> None:
    seen["inputs"] += 1
    try:
        ev = decode(data)
    except BadEvent as exc:
        assert exc.reason in REASONS, exc.reason
        assert isinstance(exc.detail, str) and 0 < len(exc.detail) < 500, exc.detail
        assert exc.reason != "too_large" or len(data) > MAX_EVENT_BYTES
        record = json.loads(deadletter.dumps(deadletter.from_raw(exc.reason, exc.detail, data)))
        assert record["reason"] == exc.reason
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            assert record["raw"] == text  # dead-lettered whole
        seen[f"reason:{exc.reason}"] += 1
    else:
        assert type(ev) is Event
        assert len(data) <= MAX_EVENT_BYTES
        assert WITHOUT_TS_BOUNDS or MIN_TS_MS <= ev.ts_ms < MAX_TS_MS
        assert isinstance(ev.event_id, str) and ev.event_id
        _through_core(ev)
        seen[f"accepted:{ev.type}"] += 1
    if seen["inputs"] % 500 == 0:
        _write_summary()


# ---------------------------------------------------------------------------------- mutator

FIELDS = ("event_id", "type", "ts", "contact_id", "channel", "customer_id", "issue", "queue_id", "priority",
          "agent_id", "reason", "to_queue_id", "automated", "survey", "score", "scale_max", "state", "queues",
          "capacity")
TYPES = tuple(decode_module.EVENT_TYPES) + ("contact.unknown", "", "CONTACT.QUEUED")
TIMES = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z",
         "1970-01-01T00:00:00+00:01", "9998-12-31T23:59:59.999Z", "9998-12-31T23:59:59.999-23:59",
         "9999-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59+23:59", "2026-11-23T09:00:00Z",
         "2026-11-30T09:00:00Z", "2026-11-16T09:00:00Z", "3026-11-23T09:00:00Z", "2026-11-23t09:00:00.123456789z",
         "2026-02-29T00:00:00Z", "2026-11-23T09:00:60Z", "2026-11-23T24:00:00Z", "2026-11-23T09:00:00",
         "2026-11-23T09:00:00+24:00", "2026-11-23 09:00:00Z", "")


def _hostile(rng: random.Random):
    pick = rng.randrange(14)
    if pick == 0:
        return rng.choice(TIMES)
    if pick == 1:
        return rng.choice(TYPES)
    if pick == 2:
        return "x" * rng.choice((0, 1, 200, 201, 5000, MAX_EVENT_BYTES))
    if pick == 3:
        return rng.choice((0, -1, 1, 2**31, 2**63, 10**30, -(10**30)))
    if pick == 4:
        return rng.choice((0.0, -0.0, 1.5, 2.0, 1e308, -1e308, 5e-324, 100.0000001))
    if pick == 5:
        return rng.choice((True, False, None))
    if pick == 6:
        depth = rng.choice((2, 50, 1000, 10_000))
        return json.loads("[" * depth + "]" * depth) if depth < 900 else {"__deep__": depth}
    if pick == 7:
        return rng.choice(([], ["a"], ["a", "a"], [1], [None], ["x" * 201]))
    if pick == 8:
        return {"nested": {"x": [1, 2, {"y": None}]}}
    if pick == 9:
        return rng.choice(("\ud800", "\udfff", "\x00", "\u2028", "\U0001F600", "é"))
    if pick == 10:
        return rng.choice(("voice", "fax", "Voice", "csat", "nps", "busy", "lunch", "overflow", "other"))
    if pick == 11:
        return {"__nan__": rng.choice(("NaN", "Infinity", "-Infinity", "1e400", "-0"))}
    if pick == 12:
        return rng.choice((0, 5, 10, 100, 101))
    return str(rng.randrange(10**6))


def _dumps(obj) -> bytes:
    """json.dumps, plus the constructs json.dumps cannot write: deep nesting, NaN, lone surrogates."""
    tokens: dict[str, str] = {}

    def encode(v):
        if isinstance(v, dict) and len(v) == 1 and "__deep__" in v:
            key = f"@@{len(tokens)}@@"
            tokens[f'"{key}"'] = "[" * v["__deep__"] + "]" * v["__deep__"]
            return key
        if isinstance(v, dict) and len(v) == 1 and "__nan__" in v:
            key = f"@@{len(tokens)}@@"
            tokens[f'"{key}"'] = v["__nan__"]
            return key
        if isinstance(v, dict):
            return {k: encode(x) for k, x in v.items()}
        if isinstance(v, list):
            return [encode(x) for x in v]
        return v

    text = json.dumps(encode(obj))
    for k, v in tokens.items():
        text = text.replace(k, v)
    return text.encode("utf-8", "surrogatepass")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.3:
        return atheris.Mutate(data, max_size)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return atheris.Mutate(data, max_size)
    if not isinstance(obj, dict):
        return atheris.Mutate(data, max_size)
    op = rng.randrange(11)
    if op < 2:  # times are where the core is most exposed: edges of the accepted range, skew
        obj["ts"] = rng.choice(TIMES)
    elif op < 7:
        obj[rng.choice(FIELDS + tuple(obj))] = _hostile(rng)
    elif op == 7 and obj:
        obj.pop(rng.choice(list(obj)))
    elif op == 8:
        obj["type"] = rng.choice(TYPES)
    elif op == 9:
        out = _dumps(obj)
        # a duplicate key: JSON allows it, the last one wins
        out = out[:-1] + b', "type": ' + json.dumps(rng.choice(TYPES)).encode() + b"}"
        return out if len(out) <= max_size else atheris.Mutate(data, max_size)
    else:
        obj = rng.choice(([obj], "text", 1, None, [], {"event": obj}))
    out = _dumps(obj)
    return out if len(out) <= max_size else atheris.Mutate(data, max_size)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput, custom_mutator=mutate)
    atheris.Fuzz()
