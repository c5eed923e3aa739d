"""Property tests of the adapters (processor/ingest): whatever the input lines or rows, the mapper
never raises, and every event it produces passes the contract's schemas (the decoder's validation
of schemas/events/*.json); ids depend on the input only; a checkpointed state resumes exactly."""
from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.decode import BadEvent, decode
from processor.ingest.asterisk import QueueLogMapper
from processor.ingest.common import Reorder, rfc3339
from processor.ingest.csvlog import Mapping, RowMapper

PROFILE = settings(max_examples=int(os.environ.get("INGEST_PROP_EXAMPLES", "200")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
T0 = 1795424400
EVENTS = ["ENTERQUEUE", "CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITWITHKEY", "EXITEMPTY", "COMPLETECALLER",
          "COMPLETEAGENT", "TRANSFER", "RINGNOANSWER", "ATTENDEDTRANSFER", "BLINDTRANSFER", "ADDMEMBER",
          "REMOVEMEMBER", "PAUSE", "UNPAUSE", "AGENTLOGIN", "AGENTLOGOFF", "PAUSEALL", "UNPAUSEALL", "SYSCOMPAT",
          "WITHDRAW", "RINGCANCELED", "AGENTDUMP", "QUEUESTART", "CONFIGRELOAD", "CUSTOM"]
# Field text: the usual values, and anything without the separator or a line break.
text = st.one_of(st.sampled_from(["", "NONE", "sales", "support", "PJSIP/1001", "Agent/2002", "1.1", "1.2", "x" * 201,
                                  "PAUSED", "1", "0", "BRIDGE", "LINK", "APP", "anonymous"]),
                 st.text(alphabet=st.characters(blacklist_characters="|\r\n", blacklist_categories=("Cs",)), max_size=30))
stamp = st.one_of(st.integers(T0 - 100, T0 + 7200).map(str), st.integers(-10, 10**12).map(str),
                  st.sampled_from(["2026-11-23 09:00:05.123456", "2026-11-23 09:00:05", "1795424400.5", "", "x", "9" * 30]))


def _line(parts) -> str:
    ts, callid, queue, agent, event, data = parts
    return "|".join([ts, callid, queue, agent, event, *data])


queue_line = st.tuples(stamp, text, text, text, st.sampled_from(EVENTS), st.lists(text, max_size=6)).map(_line)
any_line = st.one_of(queue_line, st.text(max_size=80))


def _assert_valid(events: list[dict]) -> None:
    for e in events:
        try:
            decode(json.dumps(e))
        except BadEvent as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{e} refused: {exc}") from None


@PROFILE
@given(st.lists(any_line, max_size=60))
def test_every_asterisk_event_passes_the_contract_schemas(lines):
    mapper = QueueLogMapper(exit_keys={"1": "voicemail"})
    out = [e for line in lines for e in mapper.map_line(line)]
    _assert_valid(out)
    t = mapper.tally
    assert t.read == len(lines) and t.events == len(out)


@PROFILE
@given(st.lists(queue_line, max_size=40), st.data())
def test_asterisk_ids_depend_on_the_lines_and_state_resumes_exactly(lines, data):
    whole = QueueLogMapper()
    expected = [e for line in lines for e in whole.map_line(line)]
    again = QueueLogMapper()
    assert [e for line in lines for e in again.map_line(line)] == expected
    cut = data.draw(st.integers(0, len(lines)))
    first = QueueLogMapper()
    got = [e for line in lines[:cut] for e in first.map_line(line)]
    second = QueueLogMapper(state=json.loads(json.dumps(first.state())))
    got += [e for line in lines[cut:] for e in second.map_line(line)]
    assert got == expected
    # Distinct lines never share an event id.
    owners = {}
    for line in lines:
        for e in QueueLogMapper().map_line(line):
            assert owners.setdefault(e["event_id"], line.rstrip("\r\n")) == line.rstrip("\r\n")


HEADER = ["id", "date", "arr", "queue", "qin", "qout", "result", "svc_in", "svc_out", "agent", "ani"]
MAPPING = Mapping.from_dict({
    "columns": {"contact_id": "id", "arrival_date": "date", "arrival": "arr", "queue": "queue", "queue_start": "qin",
                "queue_exit": "qout", "outcome": "result", "service_start": "svc_in", "service_end": "svc_out",
                "agent": "agent", "customer_id": "ani"},
    "outcomes": {"answered": ["ANS"], "abandoned": ["ABN"], "flowed_out": {"timeout": ["TMO"]}, "never_queued": ["IVR"]},
    "time_zone": "Europe/Paris", "time_format": "%H:%M:%S", "date_format": "%Y-%m-%d", "none": ["", "0:00:00"]})
tod = st.one_of(st.builds(lambda h, m, s: f"{h}:{m:02d}:{s:02d}", st.integers(0, 23), st.integers(0, 59),
                          st.integers(0, 59)),
                st.sampled_from(["", "0:00:00", "24:00:00", "9h", "23:59:59", "00:00:01"]), st.text(max_size=8))
cell = {"id": st.one_of(st.sampled_from(["c1", "c2", ""]), st.text(max_size=10)),
        "date": st.one_of(st.sampled_from(["2026-11-23", "2026-03-29", "2026-10-25", "2026-02-30", ""]),
                          st.text(max_size=10)),
        "arr": tod, "queue": st.sampled_from(["billing", "", "q" * 201]), "qin": tod, "qout": tod,
        "result": st.sampled_from(["ANS", "ABN", "TMO", "IVR", "", "???"]), "svc_in": tod, "svc_out": tod,
        "agent": st.sampled_from(["a-1", "", "a" * 201]), "ani": st.one_of(st.just(""), st.text(max_size=12))}
csv_row = st.tuples(*(cell[h] for h in HEADER)).map(list)
short_row = st.lists(st.text(max_size=10), max_size=len(HEADER) + 2)


@PROFILE
@given(st.lists(st.one_of(csv_row, short_row), max_size=40))
def test_every_csv_event_passes_the_contract_schemas_and_a_call_runs_forward(rows):
    mapper = RowMapper(MAPPING, HEADER)
    for row in rows:
        out = mapper.map_row(row)
        _assert_valid(out)
        if out:
            assert out[0]["type"] == "contact.created"
            assert len({e["contact_id"] for e in out}) == 1
            times = [e["ts"] for e in out]
            assert times == sorted(times)  # waits and handle times are never negative
    t = mapper.tally
    assert t.read == len(rows) and t.contacts + sum(t.skipped.values()) == len(rows)


@PROFILE
@given(st.lists(st.tuples(st.integers(0, 7200), st.sampled_from(["contact.created", "contact.queued",
                                                                  "contact.answered", "contact.wrapup_ended"])),
                max_size=50), st.integers(0, 3600))
def test_reorder_releases_each_event_once_in_order_when_rows_stay_within_the_window(items, window):
    # Rows arrive in arrival order; each row's events lie after its arrival.
    rows = sorted(items)
    r = Reorder(window)
    out = []
    for arrival, kind in rows:
        evs = [{"ts": rfc3339(T0 + arrival), "type": "contact.created", "n": len(out)},
               {"ts": rfc3339(T0 + arrival + 5), "type": kind}]
        out += r.push(evs, T0 + arrival)
    out += r.drain()
    assert len(out) == 2 * len(rows)
    assert [e["ts"] for e in out] == sorted(e["ts"] for e in out)


# A queue_log of well-formed calls, as Asterisk writes them in time order: the processor accepts
# every event the adapter makes of it (no dead letter) and counts each call's segments and legs.
call = st.tuples(st.integers(0, 3000), st.sampled_from(["sales", "support"]),
                 st.sampled_from(["answer", "transfer", "abandon", "timeout", "key", "empty"]),
                 st.integers(0, 120), st.integers(0, 600), st.integers(0, 60))


def _calls_to_lines(calls) -> tuple[list[str], dict[str, int]]:
    timed: list[tuple[int, str]] = []  # (time, line); sorted stably, so a call's own lines keep their order
    expected = {"segments": 0, "answered": 0, "abandoned": 0, "flowed_out": 0, "legs": 0}
    for n, (start, queue, outcome, wait, talk, wait2) in enumerate(calls):
        cid, agent, t = f"{T0 + start}.{n}", f"PJSIP/{1000 + n}", T0 + start

        def put(at: int, text: str) -> None:
            timed.append((at, f"{at}|{cid}|{text}"))

        put(t, f"{queue}|NONE|ENTERQUEUE||+3360{n:07d}|1")
        expected["segments"] += 1
        end = t + wait
        if outcome in ("answer", "transfer"):
            expected["answered"] += 1
            expected["legs"] += 1
            put(end, f"{queue}|{agent}|CONNECT|{wait}|{cid}9|2")
            if outcome == "answer":
                put(end + talk, f"{queue}|{agent}|COMPLETECALLER|{wait}|{talk}|1")
            else:
                other = "support" if queue == "sales" else "sales"
                put(end + talk, f"{queue}|{agent}|BLINDTRANSFER|700|ctx|{wait}|{talk}|1")
                put(end + talk, f"{other}|NONE|ENTERQUEUE||+3360{n:07d}|1")
                put(end + talk + wait2, f"{other}|PJSIP/9{n}|CONNECT|{wait2}|{cid}8|1")
                put(end + talk + wait2 + 30, f"{other}|PJSIP/9{n}|COMPLETEAGENT|{wait2}|30|1")
                expected["segments"] += 1
                expected["answered"] += 1
                expected["legs"] += 1
        elif outcome == "abandon":
            expected["abandoned"] += 1
            put(end, f"{queue}|NONE|ABANDON|1|1|{wait}")
        else:
            expected["flowed_out"] += 1
            event = {"timeout": "EXITWITHTIMEOUT|1|1", "key": "EXITWITHKEY|1|1|1", "empty": "EXITEMPTY|1|1"}[outcome]
            put(end, f"{queue}|NONE|{event}|{wait}")
    timed.sort(key=lambda x: x[0])
    return [line for _, line in timed], expected


@settings(max_examples=int(os.environ.get("INGEST_PROP_EXAMPLES", "200")) // 4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(call, min_size=1, max_size=25))
def test_a_well_formed_queue_log_is_accepted_whole_by_the_processor(calls):
    import io

    from processor.core.settings import EngineSettings
    from processor.replay import replay_lines

    lines, expected = _calls_to_lines(calls)
    mapper = QueueLogMapper()
    events = [e for line in lines for e in mapper.map_line(line)]
    assert mapper.tally.contacts == len(calls) and not mapper.tally.skipped
    out, dead = io.StringIO(), io.StringIO()
    replay_lines((json.dumps(e).encode() + b"\n" for e in events), EngineSettings(), out, dead)
    assert dead.getvalue() == ""
    latest: dict[tuple, dict] = {}
    for rec in map(json.loads, out.getvalue().splitlines()):
        if rec["kind"] == "queue_interval":
            key = (rec["queue_id"], rec["interval_start"])
            if key not in latest or rec["version"] > latest[key]["version"]:
                latest[key] = rec
    total = {k: sum(r[k] for r in latest.values()) for k in ("offered", "answered", "abandoned", "flowed_out", "handled")}
    assert total == {"offered": expected["segments"], "answered": expected["answered"],
                     "abandoned": expected["abandoned"], "flowed_out": expected["flowed_out"],
                     "handled": expected["legs"]}


# Well-formed per-call rows around midnight, in arrival order up to a few minutes of disorder, with
# service starting up to 2 s before the queue exit: after the reorder the processor accepts them all.
csv_call = st.tuples(st.integers(0, 7200), st.integers(0, 20), st.integers(0, 300), st.integers(0, 2),
                     st.integers(1, 900), st.sampled_from(["ANS", "ABN", "TMO", "IVR"]), st.integers(0, 240))


@settings(max_examples=int(os.environ.get("INGEST_PROP_EXAMPLES", "200")) // 4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(csv_call, min_size=1, max_size=25))
def test_well_formed_csv_rows_are_accepted_whole_by_the_processor(calls):
    import io

    from processor.core.settings import EngineSettings
    from processor.replay import replay_lines

    def hms(s: int) -> str:  # midnight written 00:00:00: "0:00:00" means none in this mapping (docs/ingest.md)
        s %= 86400
        return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"

    start = 23 * 3600  # 23:00 local on 2026-11-22: the calls cross midnight
    rows, expected = [], {"offered": 0, "answered": 0, "abandoned": 0, "flowed_out": 0, "handled": 0}
    for n, (arr, to_queue, wait, skew, talk, outcome, shuffle) in enumerate(calls):
        a = start + arr
        q_in, q_out = a + to_queue, a + to_queue + wait
        date = "2026-11-22" if a < 86400 else "2026-11-23"
        if outcome == "IVR":
            row = [f"c{n}", date, hms(a), "", "", "", "IVR", "", "", "", ""]
        elif outcome == "ANS":
            row = [f"c{n}", date, hms(a), "billing", hms(q_in), hms(q_out), "ANS", hms(max(q_out - skew, q_in)),
                   hms(q_out + talk), "a-1", f"cust{n}"]
            expected["answered"] += 1
            expected["handled"] += 1
        else:
            row = [f"c{n}", date, hms(a), "billing", hms(q_in), hms(q_out), outcome, "0:00:00", "0:00:00", "", ""]
            expected["abandoned" if outcome == "ABN" else "flowed_out"] += 1
        expected["offered"] += outcome != "IVR"
        rows.append((a + shuffle, row))  # the export's order: arrival, give or take 4 minutes
    rows.sort(key=lambda x: x[0])
    mapper = RowMapper(MAPPING, HEADER)
    order = Reorder(600)
    events = []
    for _, row in rows:
        events += order.push(mapper.map_row(row), mapper.last_arrival)
    events += order.drain()
    assert not mapper.tally.skipped and mapper.tally.contacts == len(calls)
    out, dead = io.StringIO(), io.StringIO()
    replay_lines((json.dumps(e).encode() + b"\n" for e in events), EngineSettings(), out, dead)
    assert dead.getvalue() == ""
    latest: dict[tuple, dict] = {}
    for rec in map(json.loads, out.getvalue().splitlines()):
        if rec["kind"] == "queue_interval":
            key = (rec["queue_id"], rec["interval_start"])
            if key not in latest or rec["version"] > latest[key]["version"]:
                latest[key] = rec
    assert {k: sum(r[k] for r in latest.values()) for k in expected} == expected
    assert all(r["version"] == 1 for r in latest.values())  # in event-time order: nothing to correct


# Any text in the identifier columns (quotes, backslashes, control characters, non-ASCII): each
# event the CSV adapter renders is, byte for byte, orjson's encoding of the same event as a dict
# (what the adapter wrote before it rendered lines itself), and its time is the event's `ts`.
ident = st.one_of(st.sampled_from(["c1", "a\"b", "a\\b", "tab\there", "é", "\x7f", "\u2028", "😀"]),
                  st.text(max_size=12))


@PROFILE
@given(st.lists(st.tuples(ident, ident, ident, st.sampled_from(["ANS", "ABN", "TMO", "IVR"])), max_size=20))
def test_csv_lines_are_orjsons_encoding_of_the_events(cells):
    import orjson

    from processor.core.events import parse_ts_ms

    mapper = RowMapper(MAPPING, HEADER)
    for n, (contact, agent, customer, outcome) in enumerate(cells):
        row = [contact or f"c{n}", "2026-11-23", "09:00:00", "billing", "09:00:05", "09:00:20", outcome,
               "09:00:20", "09:05:20", agent or "a-1", customer]
        for t, line in mapper.map_row_lines(row):
            event = orjson.loads(line)
            assert orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) == line.encode()
            assert parse_ts_ms(event["ts"]) == t * 1000
