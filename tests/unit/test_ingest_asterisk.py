"""processor.ingest.asterisk: each queue_log event (fields as Asterisk's "Queue Logs" page and
apps/app_queue.c write them) to its contract events."""
from __future__ import annotations

import json

import pytest

from processor.decode import decode
from processor.ingest.asterisk import QueueLogMapper

T0 = 1795424400  # 2026-11-23T09:00:00Z


def line(dt: int, callid: str, queue: str, agent: str, event: str, *data: str) -> str:
    return "|".join([str(T0 + dt), callid, queue, agent, event, *data])


def valid(events: list[dict]) -> list[dict]:
    for e in events:
        decode(json.dumps(e))  # raises BadEvent if the contract's schema refuses it
    return events


def kinds(events):
    return [(e["type"], e["ts"][11:19]) for e in events]


@pytest.fixture
def m():
    return QueueLogMapper(exit_keys={"1": "voicemail", "2": "callback"})


def test_enterqueue_creates_the_contact_once_and_queues_it(m):
    out = valid(m.map_line(line(0, "1.1", "sales", "NONE", "ENTERQUEUE", "", "+33612345678", "1")))
    assert [e["type"] for e in out] == ["contact.created", "contact.queued"]
    created, queued = out
    assert created["contact_id"] == "1.1" and created["customer_id"] == "+33612345678" and created["channel"] == "voice"
    assert queued["queue_id"] == "sales" and queued["ts"] == "2026-11-23T09:00:00Z"
    # The same call entering a second queue (after a transfer) is queued again, not created again.
    again = valid(m.map_line(line(60, "1.1", "support", "NONE", "ENTERQUEUE", "", "+33612345678", "1")))
    assert [e["type"] for e in again] == ["contact.queued"] and again[0]["queue_id"] == "support"


@pytest.mark.parametrize("caller", ["", "anonymous", "Unknown", "x" * 201])
def test_enterqueue_without_a_usable_caller_id_gets_a_customer_of_its_own(m, caller):
    created = m.map_line(line(0, "1.7", "sales", "NONE", "ENTERQUEUE", "", caller, "1"))[0]
    assert created["customer_id"] == "caller-1.7"


def test_enterqueue_of_old_asterisk_without_origposition(m):
    out = valid(m.map_line(line(0, "1.2", "sales", "NONE", "ENTERQUEUE", "", "555")))
    assert [e["type"] for e in out] == ["contact.created", "contact.queued"]


def test_connect_answers_and_makes_the_agent_busy(m):
    m.map_line(line(0, "1.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"))
    out = valid(m.map_line(line(12, "1.1", "sales", "PJSIP/1001", "CONNECT", "12", "1.2", "3")))
    assert [e["type"] for e in out] == ["contact.answered", "agent.state_changed"]
    assert out[0]["agent_id"] == "PJSIP/1001" and out[0]["queue_id"] == "sales"
    assert out[1] == {**out[1], "agent_id": "PJSIP/1001", "state": "busy", "queues": ["sales"]}


@pytest.mark.parametrize("event", ["COMPLETECALLER", "COMPLETEAGENT"])
def test_complete_ends_the_leg_with_no_acw_and_frees_the_agent(m, event):
    m.map_line(line(0, "1.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"))
    m.map_line(line(12, "1.1", "sales", "PJSIP/1001", "CONNECT", "12", "1.2", "3"))
    out = valid(m.map_line(line(200, "1.1", "sales", "PJSIP/1001", event, "12", "188", "1")))
    assert kinds(out) == [("contact.wrapup_started", "09:03:20"), ("contact.wrapup_ended", "09:03:20"),
                          ("agent.state_changed", "09:03:20")]
    assert out[2]["state"] == "available"


def test_abandon_and_syscompat_abandon(m):
    out = valid(m.map_line(line(3, "1.3", "sales", "NONE", "ABANDON", "1", "1", "3")))
    assert [(e["type"], e["queue_id"]) for e in out] == [("contact.abandoned", "sales")]
    out = valid(m.map_line(line(9, "1.4", "sales", "PJSIP/1001", "SYSCOMPAT", "")))
    assert [e["type"] for e in out] == ["contact.abandoned"]


@pytest.mark.parametrize("event,data,reason", [
    ("EXITWITHTIMEOUT", ("1", "1", "120"), "timeout"),
    ("EXITEMPTY", ("1", "1", "2"), "overflow"),
    ("WITHDRAW", ("1", "1", "30", "info"), "overflow"),
    ("EXITWITHKEY", ("1", "1", "1", "8"), "voicemail"),
    ("EXITWITHKEY", ("2", "1", "1", "8"), "callback"),
    ("EXITWITHKEY", ("9", "1", "1", "8"), "overflow"),
])
def test_exits_flow_out_with_their_reason(m, event, data, reason):
    out = valid(m.map_line(line(5, "1.5", "support", "NONE", event, *data)))
    assert [(e["type"], e["reason"], e["queue_id"]) for e in out] == [("contact.flowed_out", reason, "support")]


@pytest.mark.parametrize("event,data,target", [
    ("BLINDTRANSFER", ("600", "from-queue", "30", "120", "2"), "600@from-queue"),
    ("TRANSFER", ("600", "from-queue", "30", "120", "2"), "600@from-queue"),
    ("ATTENDEDTRANSFER", ("BRIDGE", "5f3c-aa", "30", "120", "2"), "BRIDGE:5f3c-aa"),
    ("ATTENDEDTRANSFER", ("APP", "Queue", "30", "120", "2"), "APP:Queue"),
    ("ATTENDEDTRANSFER", ("LINK", "Local/1@a-0;1", "Local/1@a-0;2", "30", "120", "2"), "LINK:Local/1@a-0;1:Local/1@a-0;2"),
])
def test_transfers_end_the_leg_toward_the_destination_asterisk_names(m, event, data, target):
    m.map_line(line(0, "1.6", "sales", "NONE", "ENTERQUEUE", "", "555", "1"))
    m.map_line(line(30, "1.6", "sales", "PJSIP/1001", "CONNECT", "30", "1.7", "2"))
    out = valid(m.map_line(line(150, "1.6", "sales", "PJSIP/1001", event, *data)))
    assert [e["type"] for e in out] == ["contact.transferred", "agent.state_changed"]
    assert out[0]["to_queue_id"] == target and out[0]["agent_id"] == "PJSIP/1001"
    assert out[1]["state"] == "available"


def test_member_events_give_the_agent_state_and_queues(m):
    seq = [
        (line(0, "MANAGER", "sales", "PJSIP/1001", "ADDMEMBER", ""), ("available", ["sales"])),
        (line(1, "MANAGER", "support", "PJSIP/1001", "ADDMEMBER", "PAUSED"), ("available", ["sales", "support"])),
        (line(2, "NONE", "sales", "PJSIP/1001", "PAUSE", "Lunch"), ("away", ["sales", "support"])),
        (line(3, "NONE", "support", "PJSIP/1001", "UNPAUSE", ""), ("available", ["sales", "support"])),
        (line(4, "MANAGER", "support", "PJSIP/1001", "REMOVEMEMBER", ""), ("away", ["sales"])),
        (line(5, "NONE", "sales", "PJSIP/1001", "UNPAUSE", ""), ("available", ["sales"])),
        (line(6, "MANAGER", "sales", "PJSIP/1001", "REMOVEMEMBER", ""), ("offline", [])),
    ]
    for text, (state, queues) in seq:
        out = valid(m.map_line(text))
        assert [(e["type"], e["state"], e["queues"]) for e in out] == [("agent.state_changed", state, queues)], text


def test_agent_login_and_logoff(m):
    out = valid(m.map_line(line(0, "1.9", "NONE", "Agent/2002", "AGENTLOGIN", "PJSIP/2002-0001")))
    assert [(e["state"], e["queues"]) for e in out] == [("available", [])]
    m.map_line(line(1, "MANAGER", "support", "Agent/2002", "ADDMEMBER", ""))
    out = valid(m.map_line(line(600, "1.9", "NONE", "Agent/2002", "AGENTLOGOFF", "PJSIP/2002-0001", "600")))
    assert [(e["state"], e["queues"]) for e in out] == [("offline", ["support"])]


def test_an_unchanged_agent_state_sends_nothing_and_says_so(m):
    m.map_line(line(0, "MANAGER", "sales", "PJSIP/1001", "ADDMEMBER", ""))
    assert m.map_line(line(1, "NONE", "sales", "PJSIP/1001", "UNPAUSE", "")) == []
    assert m.tally.skipped["UNPAUSE: agent state unchanged"] == 1


@pytest.mark.parametrize("text,reason", [
    (line(0, "1.1", "sales", "PJSIP/1001", "RINGNOANSWER", "15000"), "RINGNOANSWER: no contract equivalent"),
    (line(0, "1.1", "sales", "PJSIP/1001", "RINGCANCELED", "900"), "RINGCANCELED: no contract equivalent"),
    (line(0, "1.1", "sales", "PJSIP/1001", "AGENTDUMP", ""), "AGENTDUMP: no contract equivalent"),
    (line(0, "NONE", "NONE", "NONE", "QUEUESTART", ""), "QUEUESTART: no contract equivalent"),
    (line(0, "NONE", "NONE", "NONE", "CONFIGRELOAD", ""), "CONFIGRELOAD: no contract equivalent"),
    (line(0, "1.1", "sales", "NONE", "MYCUSTOMEVENT", "x"), "unknown event"),
    (line(0, "1.1", "sales", "NONE", "CONNECT", "3"), "CONNECT without an agent"),
    (line(0, "NONE", "sales", "NONE", "ABANDON", "1", "1", "3"), "ABANDON without a call id or queue"),
    ("1795424400|1.1|sales", "not a queue_log line (fewer than 5 fields)"),
    ("yesterday|1.1|sales|NONE|ENTERQUEUE||555|1", "bad time"),
    ("", "not a queue_log line (fewer than 5 fields)"),
])
def test_lines_without_contract_events_are_counted_by_reason(m, text, reason):
    assert m.map_line(text) == []
    assert m.tally.skipped == {reason: 1} and m.tally.read == 1


def test_realtime_date_time_stamps_are_read_in_the_given_zone():
    m = QueueLogMapper(time_zone="Europe/Paris")
    out = m.map_line("2026-11-23 10:00:05.123456|1.1|sales|NONE|ENTERQUEUE||555|1")
    assert out[0]["ts"] == "2026-11-23T09:00:05Z"


def test_ids_depend_on_the_line_only():
    text = line(0, "1.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1")
    a, b = QueueLogMapper().map_line(text), QueueLogMapper().map_line(text + "\r\n")
    assert [e["event_id"] for e in a] == [e["event_id"] for e in b]
    assert len({e["event_id"] for e in a}) == 2


def test_state_round_trips_so_a_restart_maps_the_rest_identically():
    lines = [line(0, "MANAGER", "sales", "PJSIP/1001", "ADDMEMBER", ""),
             line(5, "1.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(9, "1.1", "sales", "PJSIP/1001", "CONNECT", "4", "1.2", "1"),
             line(60, "1.1", "sales", "PJSIP/1001", "BLINDTRANSFER", "600", "ctx", "4", "51", "1"),
             line(60, "1.1", "support", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(70, "NONE", "sales", "PJSIP/1001", "PAUSE", "x")]
    whole = QueueLogMapper()
    expected = [e for text in lines for e in whole.map_line(text)]
    first = QueueLogMapper()
    got = [e for text in lines[:3] for e in first.map_line(text)]
    second = QueueLogMapper(state=json.loads(json.dumps(first.state())))
    got += [e for text in lines[3:] for e in second.map_line(text)]
    assert got == expected
    assert second.tally.read == 6


def test_an_unknown_exit_key_reason_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        QueueLogMapper(exit_keys={"1": "hangup"})


def test_calls_whose_end_was_never_logged_are_forgotten_after_a_day():
    m = QueueLogMapper()
    m.map_line(line(0, "lost.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"))
    for i in range(10_000):
        m.map_line(line(90_000 + i, "NONE", "NONE", "NONE", "QUEUESTART", ""))
    assert "lost.1" not in m.state()["calls"]
    # Seen again after that, it is a new contact.created (with its own, line-derived id).
    assert m.map_line(line(100_000, "lost.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"))[0]["type"] == "contact.created"


def _handled_and_answered(events: list[dict]) -> tuple[int, int, int]:
    """(offered, answered, handled) that `kpi replay` publishes for these events, summed over queues."""
    import io

    from processor.core.settings import EngineSettings
    from processor.replay import replay_lines

    out, dead = io.StringIO(), io.StringIO()
    replay_lines((json.dumps(e).encode() + b"\n" for e in events), EngineSettings(), out, dead)
    assert dead.getvalue() == ""
    latest: dict[tuple, dict] = {}
    for rec in map(json.loads, out.getvalue().splitlines()):
        if rec["kind"] == "queue_interval":
            key = (rec["queue_id"], rec["interval_start"])
            if key not in latest or rec["version"] > latest[key]["version"]:
                latest[key] = rec
    return tuple(sum(r[k] for r in latest.values()) for k in ("offered", "answered", "handled"))


def test_a_call_answered_transferred_requeued_and_answered_in_one_second_keeps_the_log_order(m):
    # All in the second 09:00:00 (talk under a second): within a millisecond the processor orders by
    # lifecycle rank, so the transfer would come after the second answer and the first leg count nowhere.
    lines = [line(0, "1.9", "sales", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(0, "1.9", "sales", "PJSIP/1001", "CONNECT", "0", "1.10", "1"),
             line(0, "1.9", "sales", "PJSIP/1001", "BLINDTRANSFER", "600", "ctx", "0", "0", "1"),
             line(0, "1.9", "support", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(0, "1.9", "support", "Agent/2002", "CONNECT", "0", "1.11", "1"),
             line(30, "1.9", "support", "Agent/2002", "COMPLETEAGENT", "0", "30", "1")]
    events = valid([e for text in lines for e in m.map_line(text)])
    calls = [(e["type"], e["ts"]) for e in events if e["type"].startswith("contact.")]
    assert calls == [("contact.created", "2026-11-23T09:00:00Z"), ("contact.queued", "2026-11-23T09:00:00Z"),
                     ("contact.answered", "2026-11-23T09:00:00Z"), ("contact.transferred", "2026-11-23T09:00:00Z"),
                     # from the line ranked before what came first in its second: 1 ms later, and so on
                     ("contact.queued", "2026-11-23T09:00:00.001Z"), ("contact.answered", "2026-11-23T09:00:00.001Z"),
                     ("contact.wrapup_started", "2026-11-23T09:00:30.001Z"),
                     ("contact.wrapup_ended", "2026-11-23T09:00:30.001Z")]
    assert _handled_and_answered(events) == (2, 2, 2)


def test_lines_of_one_second_in_lifecycle_order_keep_whole_seconds(m):
    # A zero-second abandon and a zero-second answer with zero talk: the ranks go up, nothing moves.
    lines = [line(0, "2.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(0, "2.1", "sales", "NONE", "ABANDON", "1", "1", "0"),
             line(5, "2.2", "sales", "NONE", "ENTERQUEUE", "", "556", "1"),
             line(5, "2.2", "sales", "PJSIP/1001", "CONNECT", "0", "2.3", "1"),
             line(5, "2.2", "sales", "PJSIP/1001", "COMPLETECALLER", "0", "0", "1")]
    events = [e for text in lines for e in m.map_line(text)]
    calls = [e["ts"] for e in events if e["type"].startswith("contact.")]
    assert all(ts.endswith(":00Z") or ts.endswith(":05Z") for ts in calls)
    # The agent's own two changes in that second (busy, then available) are 1 ms apart.
    assert [(e["state"], e["ts"][17:]) for e in events if e["type"] == "agent.state_changed"] == \
        [("busy", "05Z"), ("available", "05.001Z")]
    assert _handled_and_answered(events) == (2, 1, 1)


def test_an_agents_changes_in_one_second_keep_the_log_order(m):
    # The end of one call and the CONNECT of the next in the same second, as Asterisk rings a free
    # member at once: the agent is busy on the second call (ordered by id, it could be left available).
    lines = [line(0, "MANAGER", "sales", "PJSIP/1001", "ADDMEMBER", ""),
             line(10, "3.1", "sales", "NONE", "ENTERQUEUE", "", "555", "1"),
             line(12, "3.2", "sales", "NONE", "ENTERQUEUE", "", "556", "1"),
             line(20, "3.1", "sales", "PJSIP/1001", "CONNECT", "10", "3.3", "1"),
             line(80, "3.1", "sales", "PJSIP/1001", "COMPLETEAGENT", "10", "60", "1"),
             line(80, "3.2", "sales", "PJSIP/1001", "CONNECT", "68", "3.4", "1"),
             line(80, "NONE", "sales", "PJSIP/1001", "PAUSE", "x"),
             line(200, "3.2", "sales", "PJSIP/1001", "COMPLETEAGENT", "68", "120", "1")]
    events = valid([e for text in lines for e in m.map_line(text)])
    agent = [(e["state"], e["ts"][14:]) for e in events if e["type"] == "agent.state_changed"]
    assert agent == [("available", "00:00Z"), ("busy", "00:20Z"), ("available", "01:20Z"), ("busy", "01:20.001Z"),
                     ("away", "03:20Z")]  # the PAUSE during the call changes nothing until it ends
    # Contact events keep whole seconds: the second call waited 68 s.
    assert [e["ts"] for e in events if e["type"] == "contact.answered"] == \
        ["2026-11-23T09:00:20Z", "2026-11-23T09:01:20Z"]
