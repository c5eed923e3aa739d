"""processor.ingest.csvlog: the mapping file, and each column of a per-call row to contract events,
with the quirks of real exports."""
from __future__ import annotations

import json

import pytest

from processor.decode import decode
from processor.ingest.common import Reorder
from processor.ingest.csvlog import Mapping, MappingError, RowMapper

HEADER = ["id", "date", "arr", "queue", "qin", "qout", "result", "svc_in", "svc_out", "wrap_end", "agent", "ani", "chan"]
COLUMNS = {"contact_id": "id", "arrival_date": "date", "arrival": "arr", "queue": "queue", "queue_start": "qin",
           "queue_exit": "qout", "outcome": "result", "service_start": "svc_in", "service_end": "svc_out",
           "wrapup_end": "wrap_end", "agent": "agent", "customer_id": "ani", "channel": "chan"}
OUTCOMES = {"answered": ["ANS"], "abandoned": ["ABN"], "flowed_out": {"timeout": ["TMO"], "voicemail": "VM"},
            "never_queued": ["IVR"]}


def mapper(**kw) -> RowMapper:
    data = {"columns": COLUMNS, "outcomes": OUTCOMES, "time_format": "%H:%M:%S", "date_format": "%Y-%m-%d",
            "none": ["", "0:00:00"], **kw}
    return RowMapper(Mapping.from_dict(data), HEADER)


def row(**kw) -> list[str]:
    base = {"id": "c1", "date": "2026-11-23", "arr": "09:00:00", "queue": "billing", "qin": "09:00:05",
            "qout": "09:00:20", "result": "ANS", "svc_in": "09:00:20", "svc_out": "09:05:20", "wrap_end": "09:06:00",
            "agent": "a-17", "ani": "cust-42", "chan": ""}
    base.update(kw)
    return [base[h] for h in HEADER]


def events(m: RowMapper, r: list[str]) -> list[tuple[str, str]]:
    out = m.map_row(r)
    for e in out:
        decode(json.dumps(e))  # every event passes the contract's schema
    return [(e["type"], e["ts"][11:19]) for e in out]


def test_an_answered_call_gives_its_lifecycle():
    m = mapper()
    out = m.map_row(row())
    assert [(e["type"], e["ts"]) for e in out] == [
        ("contact.created", "2026-11-23T09:00:00Z"), ("contact.queued", "2026-11-23T09:00:05Z"),
        ("contact.answered", "2026-11-23T09:00:20Z"), ("contact.wrapup_started", "2026-11-23T09:05:20Z"),
        ("contact.wrapup_ended", "2026-11-23T09:06:00Z")]
    assert out[0]["customer_id"] == "cust-42" and out[0]["channel"] == "voice" and out[0]["contact_id"] == "c1"
    assert out[2]["agent_id"] == "a-17" and out[2]["queue_id"] == "billing"
    assert m.tally.contacts == 1 and m.tally.events == 5


def test_queue_start_defaults_to_arrival_and_wrapup_end_to_service_end():
    m = mapper()
    assert events(m, row(qin="", wrap_end="")) == [
        ("contact.created", "09:00:00"), ("contact.queued", "09:00:00"), ("contact.answered", "09:00:20"),
        ("contact.wrapup_started", "09:05:20"), ("contact.wrapup_ended", "09:05:20")]


def test_answer_time_is_the_queue_exit_or_else_the_service_start():
    assert events(mapper(), row(qout=""))[2] == ("contact.answered", "09:00:20")
    assert events(mapper(), row(qout="09:00:18", svc_in="09:00:25"))[2] == ("contact.answered", "09:00:18")


def test_service_start_a_second_or_two_before_queue_exit_is_clock_skew():
    m = mapper()
    assert events(m, row(qout="09:00:20", svc_in="09:00:18"))[2] == ("contact.answered", "09:00:20")
    assert m.tally.adjusted == {"service_start up to 2 s before queue_exit (clock skew): moved to it": 1}
    m = mapper()
    assert m.map_row(row(qout="09:00:20", svc_in="09:00:17")) == []
    assert m.tally.skipped == {"service_start before queue_exit": 1}
    m = mapper(skew_seconds=0)
    assert m.map_row(row(qout="09:00:20", svc_in="09:00:19")) == []


def test_times_of_day_after_midnight_are_on_the_next_day():
    m = mapper()
    out = m.map_row(row(arr="23:58:00", qin="23:58:10", qout="00:00:40", svc_in="00:00:40", svc_out="00:05:40",
                        wrap_end="00:06:00"))
    assert [e["ts"] for e in out] == ["2026-11-23T23:58:00Z", "2026-11-23T23:58:10Z", "2026-11-24T00:00:40Z",
                                      "2026-11-24T00:05:40Z", "2026-11-24T00:06:00Z"]
    assert m.tally.adjusted["queue_exit after midnight: on the day after arrival"] == 1


def test_a_time_far_before_the_previous_one_not_across_midnight_is_refused():
    m = mapper()
    assert m.map_row(row(qout="08:00:00", svc_in="", svc_out="", wrap_end="")) == []
    assert m.tally.skipped == {"queue_exit before queue_start": 1}


def test_none_values_mean_no_time():
    m = mapper()
    assert events(m, row(result="ABN", qout="09:00:50", svc_in="0:00:00", svc_out="0:00:00", wrap_end="", agent="")) == [
        ("contact.created", "09:00:00"), ("contact.queued", "09:00:05"), ("contact.abandoned", "09:00:50")]


def test_zero_second_abandons_are_kept():
    m = mapper()
    out = events(m, row(result="ABN", qin="09:00:05", qout="09:00:05", svc_in="", svc_out="", wrap_end="", agent=""))
    assert out[1:] == [("contact.queued", "09:00:05"), ("contact.abandoned", "09:00:05")]
    assert m.tally.adjusted == {"zero-second abandon kept (a short abandon)": 1}
    m = mapper()  # an abandon with no exit time is one too
    out = events(m, row(result="ABN", qout="0:00:00", svc_in="", svc_out="", wrap_end="", agent=""))
    assert out[1:] == [("contact.queued", "09:00:05"), ("contact.abandoned", "09:00:05")]


def test_flowed_out_reasons_come_from_the_mapping():
    out = mapper().map_row(row(result="VM", svc_in="", svc_out="", wrap_end="", agent=""))
    assert (out[-1]["type"], out[-1]["reason"], out[-1]["ts"]) == ("contact.flowed_out", "voicemail", "2026-11-23T09:00:20Z")
    m = mapper()
    assert m.map_row(row(result="TMO", qout="", svc_in="", svc_out="", wrap_end="")) == []
    assert m.tally.skipped == {"flowed out without queue exit": 1}


def test_calls_never_queued_give_only_contact_created():
    for r in (row(queue="", qin="", qout="", result="ABN"), row(result="IVR")):
        m = mapper()
        assert events(m, r) == [("contact.created", "09:00:00")]
        assert m.tally.contacts == 1


@pytest.mark.parametrize("change,reason", [
    ({"id": ""}, "missing contact id"),
    ({"arr": ""}, "missing arrival"),
    ({"date": ""}, "missing arrival date"),
    ({"date": "23/11/2026"}, "unreadable arrival date"),
    ({"date": "2026-02-30"}, "unreadable arrival date"),
    ({"qin": "9h00"}, "unreadable time in queue_start"),
    ({"qin": "25:00:00"}, "unreadable time in queue_start"),
    ({"result": ""}, "missing outcome"),
    ({"result": "MAYBE"}, "unknown outcome value"),
    ({"agent": ""}, "answered without an agent"),
    ({"qout": "", "svc_in": ""}, "answered without queue exit or service start"),
    ({"chan": "fax"}, "unknown channel"),
    ({"queue": "q" * 201}, "identifier over 200 characters"),
])
def test_rows_that_cannot_be_a_call_are_skipped_with_the_reason(change, reason):
    m = mapper()
    assert m.map_row(row(**change)) == []
    assert m.tally.skipped == {reason: 1} and m.tally.contacts == 0


def test_rows_missing_fields_at_the_end_read_them_as_none():
    m = mapper()
    assert m.map_row(["c9", "2026-11-23", "09:00:00", "billing"]) == []
    assert m.tally.skipped == {"missing outcome": 1}


def test_answered_without_service_end_leaves_the_leg_open_and_says_so():
    m = mapper()
    assert [t for t, _ in events(m, row(svc_out="", wrap_end=""))][-1] == "contact.answered"
    assert list(m.tally.adjusted) == ["answered without service end: no wrap-up events (the leg stays open)"]


def test_customer_defaults_to_the_contact_and_channel_column_is_read():
    out = mapper().map_row(row(ani="", chan="chat"))
    assert out[0]["customer_id"] == "c1" and out[0]["channel"] == "chat"


def test_time_zone_and_full_date_time_columns():
    cols = {k: v for k, v in COLUMNS.items() if k != "arrival_date"}
    m = RowMapper(Mapping.from_dict({"columns": cols, "outcomes": OUTCOMES, "time_zone": "Europe/Paris",
                                     "time_format": "%d/%m/%Y %I:%M:%S %p"}), HEADER)
    out = m.map_row(row(arr="23/11/2026 10:00:00 AM", qin="23/11/2026 10:00:05 AM", qout="23/11/2026 10:00:20 AM",
                        svc_in="", svc_out="23/11/2026 01:00:00 PM", wrap_end=""))
    assert [e["ts"] for e in out] == ["2026-11-23T09:00:00Z", "2026-11-23T09:00:05Z", "2026-11-23T09:00:20Z",
                                      "2026-11-23T12:00:00Z", "2026-11-23T12:00:00Z"]
    # Summer time is read as summer time.
    out = m.map_row(row(id="c2", arr="01/07/2026 10:00:00 AM", qin="", qout="01/07/2026 10:00:20 AM", svc_in="",
                        svc_out="", wrap_end=""))
    assert out[0]["ts"] == "2026-07-01T08:00:00Z"


def test_identical_rows_give_identical_ids_and_different_rows_different_ones():
    a, b, c = mapper().map_row(row()), mapper().map_row(row()), mapper().map_row(row(id="c2"))
    assert [e["event_id"] for e in a] == [e["event_id"] for e in b]
    assert not {e["event_id"] for e in a} & {e["event_id"] for e in c}


@pytest.mark.parametrize("data,message", [
    ([], "must be a YAML map"),
    ({"columns": COLUMNS}, "must both be maps"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "colour": "red"}, "unknown key(s) colour"),
    ({"columns": {**COLUMNS, "talk": "x"}, "outcomes": OUTCOMES}, "unknown key(s) talk"),
    ({"columns": {k: v for k, v in COLUMNS.items() if k != "queue"}, "outcomes": OUTCOMES}, "queue must name"),
    ({"columns": COLUMNS, "outcomes": {"answered": ["A"], "lost": ["L"]}}, "unknown kind 'lost'"),
    ({"columns": COLUMNS, "outcomes": {"abandoned": ["A"]}}, "meaning answered"),
    ({"columns": COLUMNS, "outcomes": {"answered": ["A"], "flowed_out": {"away": ["X"]}}}, "flowed_out"),
    ({"columns": COLUMNS, "outcomes": {"answered": ["A"], "abandoned": ["A"]}}, "listed twice"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "time_zone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "time_format": "%H:%M:%S %Z"}, "%Z is not supported"),
    ({"columns": {k: v for k, v in COLUMNS.items() if k != "arrival_date"}, "outcomes": OUTCOMES,
      "time_format": "%H:%M:%S"}, "has no date"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "channel": "pigeon"}, "channel"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "skew_seconds": -1}, "skew_seconds"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "delimiter": ";;"}, "delimiter"),
    ({"columns": COLUMNS, "outcomes": OUTCOMES, "none": "0:00:00"}, "none:"),
])
def test_bad_mappings_are_refused_with_a_reason(data, message):
    with pytest.raises(MappingError, match=None) as info:
        Mapping.from_dict(data)
    assert message in str(info.value)


def test_a_column_missing_from_the_header_is_named():
    with pytest.raises(MappingError) as info:
        RowMapper(Mapping.from_dict({"columns": COLUMNS, "outcomes": OUTCOMES, "time_format": "%H:%M:%S"}),
                  [h for h in HEADER if h != "qout"])
    assert "column 'qout' (for queue_exit) is not in the file's header" in str(info.value)


def test_reorder_releases_in_event_time_order_once_rows_moved_past():
    r = Reorder(60)
    first = [{"ts": "2026-11-23T09:00:00Z", "type": "contact.created"},
             {"ts": "2026-11-23T09:05:00Z", "type": "contact.wrapup_ended"}]
    assert r.push(first, 1795424400) == []
    second = [{"ts": "2026-11-23T09:01:00Z", "type": "contact.created"}]
    # Rows at 09:02:05: nothing can come before 09:01:05 any more, so the minute 09:00 is complete.
    assert [e["ts"] for e in r.push(second, 1795424400 + 125)] == ["2026-11-23T09:00:00Z"]
    # Rows at 09:03:05: the minute 09:01 is complete too.
    assert [e["ts"] for e in r.push([], 1795424400 + 185)] == ["2026-11-23T09:01:00Z"]
    assert [e["ts"] for e in r.drain()] == ["2026-11-23T09:05:00Z"]


@pytest.mark.parametrize("none", [["", "0:00:00"], ["", "00:00:00", "-"]])
def test_times_of_day_put_in_the_cache_beforehand_read_as_parsed(none):
    # RowMapper.prefill_times (called before worker processes are forked) must give what parsing gives,
    # a "none" value spelled as a time of day included.
    filled, fresh = mapper(none=none), mapper(none=none)
    filled.prefill_times()
    for t in ("00:00:00", "00:00:01", "09:00:00", "12:34:56", "23:59:59", "9:00:00"):
        r = row(arr=t, qin=t, qout=t, svc_in=t, svc_out=t, wrap_end=t)
        assert filled.map_row(r) == fresh.map_row(r)
    assert filled.tally.to_json() == fresh.tally.to_json()
