"""Asterisk `queue_log` lines to contract events: a pure, stateful mapper (no I/O, no clock).

A line is `time|callid|queue|agent|EVENT|data1|data2|...` (apps/app_queue.c writes it through
ast_queue_log in main/logger.c; the fields of each event are in Asterisk's "Queue Logs" page).
docs/ingest.md has the mapping event by event; in short:

  ENTERQUEUE                      contact.created (first time the call is seen) + contact.queued
  CONNECT                         contact.answered; the agent becomes busy
  ABANDON, SYSCOMPAT              contact.abandoned
  EXITWITHTIMEOUT                 contact.flowed_out reason timeout
  EXITEMPTY, WITHDRAW             contact.flowed_out reason overflow
  EXITWITHKEY                     contact.flowed_out, reason per key (`exit_keys`, default overflow)
  COMPLETECALLER, COMPLETEAGENT   contact.wrapup_started + contact.wrapup_ended (queue_log records no
                                  after-call work: ACW 0); the agent is free again
  TRANSFER, BLINDTRANSFER,        contact.transferred (to_queue_id: the destination Asterisk names);
  ATTENDEDTRANSFER                the agent is free again
  ADDMEMBER, REMOVEMEMBER, PAUSE, agent.state_changed, when the agent's state or queues change
  UNPAUSE, AGENTLOGIN, AGENTLOGOFF

The state kept is small and bounded: the calls in progress (to emit one contact.created per call,
even when a transferred call enters a second queue; forgotten a day after their last line) and one
record per agent. `state()` returns it as JSON so a follower can checkpoint it with its position:
after a restart the same lines map to the same events with the same ids.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ..core.events import TYPE_RANK
from .common import MAX_EPOCH, MIN_EPOCH, Tally, line_id, rfc3339, stamp_ms

CONTRACT_REASONS = ("timeout", "callback", "voicemail", "overflow")
MAX_ID = 200
FORGET_AFTER = 86_400  # seconds of event time after a call's last line
_NO_CALLER = frozenset({"", "anonymous", "unknown", "restricted", "private", "unavailable"})
_NONE = frozenset({"", "NONE"})
# Events of queue_log that have no equivalent in the contract (counted as skipped, by name).
NO_EQUIVALENT = frozenset({"RINGNOANSWER", "RINGCANCELED", "AGENTDUMP", "QUEUESTART", "CONFIGRELOAD",
                           "PENALTY", "RINGINUSE", "OUTCALL", "DID", "INFO"})
_FLOW_OUT = {"EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "overflow", "WITHDRAW": "overflow"}
# A call line's contact events, by the type of its first one: (lowest, highest) lifecycle rank, the
# processor's order within a millisecond (core.events.TYPE_RANK). A contact.created comes only with a
# contact.queued, and no line's highest rank is below that queued's: its own rank changes nothing.
_LINE_RANKS = {
    "contact.created": (TYPE_RANK["contact.queued"], TYPE_RANK["contact.queued"]),
    "contact.queued": (TYPE_RANK["contact.queued"], TYPE_RANK["contact.queued"]),
    "contact.answered": (TYPE_RANK["contact.answered"], TYPE_RANK["contact.answered"]),
    "contact.abandoned": (TYPE_RANK["contact.abandoned"], TYPE_RANK["contact.abandoned"]),
    "contact.flowed_out": (TYPE_RANK["contact.flowed_out"], TYPE_RANK["contact.flowed_out"]),
    "contact.transferred": (TYPE_RANK["contact.transferred"], TYPE_RANK["contact.transferred"]),
    "contact.wrapup_started": (TYPE_RANK["contact.wrapup_started"], TYPE_RANK["contact.wrapup_ended"]),
}
_TRANSFERS = frozenset({"TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"})
_COMPLETES = frozenset({"COMPLETECALLER", "COMPLETEAGENT"})
_MEMBER_EVENTS = frozenset({"ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL",
                            "AGENTLOGIN", "AGENTLOGOFF", "AGENTCALLBACKLOGIN", "AGENTCALLBACKLOGOFF"})


class _Agent:
    __slots__ = ("queues", "paused", "login", "call", "sent", "last")

    def __init__(self) -> None:
        self.queues: set[str] = set()
        self.paused: set[str] = set()
        self.login: bool | None = None  # None: no AGENTLOGIN/LOGOFF seen (a static or dynamic member)
        self.call: str | None = None    # the call the agent is connected to
        self.sent: tuple | None = None  # (state, queues) last sent
        self.last = 0  # time of the last event sent, epoch milliseconds

    def state(self) -> str:
        if self.login is False or (not self.queues and self.login is None and self.call is None):
            return "offline"
        if self.call is not None:
            return "busy"
        if self.queues and self.paused >= self.queues:
            return "away"
        return "available"

    def to_json(self) -> list:
        return [sorted(self.queues), sorted(self.paused), self.login, self.call,
                [self.sent[0], list(self.sent[1])] if self.sent else None, self.last]

    @classmethod
    def from_json(cls, data: list) -> "_Agent":
        a = cls()
        a.queues, a.paused, a.login, a.call = set(data[0]), set(data[1]), data[2], data[3]
        a.sent = (data[4][0], tuple(data[4][1])) if data[4] else None
        a.last = int(data[5]) if len(data) > 5 else 0
        return a


class QueueLogMapper:
    """Maps queue_log lines, one at a time and in file order, to contract events (dicts).

    `time_zone`: the zone of date-time stamps (`2026-11-23 09:00:05.123456`, as Asterisk's realtime
    back-end writes them); epoch stamps are UTC by definition. `exit_keys`: EXITWITHKEY digit to
    flowed_out reason. `channel`: the channel of the contacts (voice).
    """

    def __init__(self, time_zone: str = "UTC", exit_keys: dict[str, str] | None = None, channel: str = "voice",
                 state: dict | None = None) -> None:
        self._tz = ZoneInfo(time_zone)
        self.exit_keys = dict(exit_keys or {})
        for key, reason in self.exit_keys.items():
            if reason not in CONTRACT_REASONS:
                raise ValueError(f"exit key {key!r}: reason {reason!r} is not one of {', '.join(CONTRACT_REASONS)}")
        self.channel = channel
        self.tally = Tally()
        self._calls: dict[str, int] = {}   # call in progress -> time of its last line
        self._agents: dict[str, _Agent] = {}
        # The second of the latest line, with the highest rank each call's lines sent in it; and the
        # calls with an offset: call -> (offset in ms, second of the line that last grew it).
        self._second = -1
        self._tops: dict[str, int] = {}
        self._shifted: dict[str, tuple[int, int]] = {}
        self._newest = 0
        self._since_sweep = 0
        if state:
            self._calls = {k: int(v) for k, v in state.get("calls", {}).items()}
            order = state.get("order", {})
            self._second = int(order.get("second", -1))
            self._tops = {k: int(v) for k, v in order.get("tops", {}).items()}
            self._shifted = {k: (int(v[0]), int(v[1])) for k, v in order.get("shifted", {}).items()}
            self._agents = {k: _Agent.from_json(v) for k, v in state.get("agents", {}).items()}
            self._newest = int(state.get("newest", 0))
            self.tally = Tally.from_json(state.get("tally", {}))

    def state(self) -> dict:
        """Everything the mapper remembers, as JSON: restore it with QueueLogMapper(state=...)."""
        return {"calls": dict(self._calls), "agents": {k: a.to_json() for k, a in self._agents.items()},
                "order": {"second": self._second, "tops": dict(self._tops),
                          "shifted": {k: list(v) for k, v in self._shifted.items()}},
                "newest": self._newest, "tally": self.tally.to_json()}

    # ------------------------------------------------------------------------------------------ lines

    def _epoch(self, text: str) -> int | None:
        if text.isdigit():
            return int(text)
        try:
            if text[:1].isdigit() and "-" not in text:
                return int(float(text))
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self._tz)
        return int(dt.timestamp())

    def map_line(self, line: str) -> list[dict]:
        """The events of one line (none for a line skipped; the tally says why)."""
        tally = self.tally
        tally.read += 1
        line = line.rstrip("\r\n")
        f = line.split("|")
        if len(f) < 5:
            tally.skipped["not a queue_log line (fewer than 5 fields)"] += 1
            return []
        epoch = self._epoch(f[0])
        if epoch is None or not MIN_EPOCH <= epoch < MAX_EPOCH:
            tally.skipped["bad time"] += 1
            return []
        callid, queue, agent, event = f[1], f[2], f[3], f[4]
        if len(callid) > MAX_ID or len(queue) > MAX_ID or len(agent) > MAX_ID:
            tally.skipped["identifier over 200 characters"] += 1
            return []
        if epoch > self._newest:
            self._newest = epoch
        self._since_sweep += 1
        if self._since_sweep >= 10_000:
            self._sweep()
        ts = rfc3339(epoch)
        if event in _MEMBER_EVENTS:
            out = self._member(line, ts, queue, agent, event, f)
            if out:
                self._agent_in_order(out[0], epoch * 1000)
            return out
        if event in NO_EQUIVALENT:
            tally.skipped[f"{event}: no contract equivalent"] += 1
            return []
        if callid in _NONE or queue in _NONE:
            tally.skipped[f"{event} without a call id or queue"] += 1
            return []
        out = self._call_line(line, epoch, ts, callid, queue, agent, event, f)
        if out:
            return self._in_log_order(callid, epoch, out)
        return out

    def _call_line(self, line: str, epoch: int, ts: str, callid: str, queue: str, agent: str, event: str,
                   f: list[str]) -> list[dict]:
        tally = self.tally
        base = line_id("ast-", line)
        if event == "ENTERQUEUE":
            out = []
            if callid not in self._calls:
                caller = f[6].strip() if len(f) > 6 else ""
                customer = caller if caller.lower() not in _NO_CALLER and len(caller) <= MAX_ID else f"caller-{callid}"
                out.append({"event_id": base + ":c", "type": "contact.created", "ts": ts, "contact_id": callid,
                            "channel": self.channel, "customer_id": customer})
                tally.contacts += 1
            self._calls[callid] = epoch
            out.append({"event_id": base + ":q", "type": "contact.queued", "ts": ts, "contact_id": callid,
                        "queue_id": queue})
            tally.events += len(out)
            return out
        if event == "ABANDON" or event == "SYSCOMPAT":
            self._calls.pop(callid, None)
            tally.events += 1
            return [{"event_id": base + ":e", "type": "contact.abandoned", "ts": ts, "contact_id": callid,
                     "queue_id": queue}]
        reason = _FLOW_OUT.get(event)
        if reason is None and event == "EXITWITHKEY":
            reason = self.exit_keys.get(f[5] if len(f) > 5 else "", "overflow")
        if reason is not None:
            self._calls.pop(callid, None)
            tally.events += 1
            return [{"event_id": base + ":e", "type": "contact.flowed_out", "ts": ts, "contact_id": callid,
                     "queue_id": queue, "reason": reason}]
        if event == "CONNECT" or event in _COMPLETES or event in _TRANSFERS:
            if agent in _NONE:
                tally.skipped[f"{event} without an agent"] += 1
                return []
            return self._agent_leg(base, ts, epoch, callid, queue, agent, event, f)
        tally.skipped["unknown event"] += 1
        return []

    def _in_log_order(self, callid: str, epoch: int, out: list[dict]) -> list[dict]:
        """Keeps a call's events in the order of its lines when several fall in one second.

        queue_log times are whole seconds, and within one millisecond the processor orders a call's
        events by lifecycle rank (core.events.TYPE_RANK), not as the log wrote them. While the ranks
        of a call's lines in a second only go up, the two orders agree and nothing is changed. A line
        whose first contact event ranks no higher than one already sent in that second (a transfer,
        then the ENTERQUEUE and CONNECT of the next queue) would be put before it: from that line on,
        the call's events are 1 ms later (the call's offset grows by 1 ms, kept for its later lines
        too, so the waits and talk times measured between them stay whole seconds as the log says).
        The ranks are remembered for the latest second only: Asterisk writes queue_log in time order.
        docs/ingest.md#lines-of-one-call-or-agent-in-one-second says what it changes."""
        first, last = _LINE_RANKS[out[0]["type"]]
        if epoch != self._second:  # queue_log is written in time order: a new second, nothing in it yet
            self._second, self._tops = epoch, {}
        tops = self._tops
        offset = 0
        if self._shifted:  # calls with an offset (rare)
            shifted = self._shifted.get(callid)
            if shifted is not None:
                offset = shifted[0]
        top = tops.get(callid)
        if top is not None and first <= top:
            offset += 1
            self._shifted[callid] = (offset, epoch)
            top = None
        tops[callid] = last if top is None or last > top else top
        if offset:
            ts = stamp_ms(epoch * 1000 + offset)
            for e in out:
                e["ts"] = ts
        if out[-1]["type"] == "agent.state_changed":
            self._agent_in_order(out[-1], epoch * 1000 + offset)
        return out

    def _agent_in_order(self, event: dict, ms: int) -> None:
        """Keeps an agent's state changes in the order of their lines within one second (the end of
        one call and the CONNECT of the next, a PAUSE after a COMPLETE...): the processor orders one
        millisecond's agent events by their ids, so the state an agent is left in would be a toss
        of the hashes. An event at or before the agent's last one in the same second is put 1 ms
        after it; other times are left as they are."""
        a = self._agents[event["agent_id"]]
        if ms <= a.last and ms // 1000 == a.last // 1000:
            ms = a.last + 1
            event["ts"] = stamp_ms(ms)
        if ms > a.last:
            a.last = ms

    def _agent_leg(self, base: str, ts: str, epoch: int, callid: str, queue: str, agent: str, event: str,
                   f: list[str]) -> list[dict]:
        a = self._agents.get(agent)
        if a is None:
            a = self._agents[agent] = _Agent()
        if event == "CONNECT":
            self._calls[callid] = epoch
            a.call = callid
            a.queues.add(queue)  # a static member (queues.conf) shows up on its first call
            out = [{"event_id": base + ":e", "type": "contact.answered", "ts": ts, "contact_id": callid,
                    "queue_id": queue, "agent_id": agent}]
        elif event in _COMPLETES:
            self._calls.pop(callid, None)
            if a.call == callid:
                a.call = None
            out = [{"event_id": base + ":w", "type": "contact.wrapup_started", "ts": ts, "contact_id": callid,
                    "agent_id": agent},
                   {"event_id": base + ":x", "type": "contact.wrapup_ended", "ts": ts, "contact_id": callid,
                    "agent_id": agent}]
        else:
            if a.call == callid:
                a.call = None
            if callid in self._calls:
                self._calls[callid] = epoch  # it may enter another queue
            d = f[5:]
            if event == "ATTENDEDTRANSFER":
                target = ":".join(x for x in d[:3 if d[:1] == ["LINK"] else 2] if x)
            else:
                target = "@".join(x for x in d[:2] if x)
            out = [{"event_id": base + ":t", "type": "contact.transferred", "ts": ts, "contact_id": callid,
                    "agent_id": agent, "to_queue_id": (target or "unknown")[:MAX_ID]}]
        out.extend(self._presence(base, ts, agent, a))
        self.tally.events += len(out)
        return out

    def _member(self, line: str, ts: str, queue: str, agent: str, event: str, f: list[str]) -> list[dict]:
        if agent in _NONE:
            self.tally.skipped[f"{event} without an agent"] += 1
            return []
        a = self._agents.get(agent)
        if a is None:
            a = self._agents[agent] = _Agent()
        in_queue = queue not in _NONE
        if event == "ADDMEMBER" and in_queue:
            a.queues.add(queue)
            if len(f) > 5 and f[5] == "PAUSED":
                a.paused.add(queue)
            else:
                a.paused.discard(queue)
        elif event == "REMOVEMEMBER" and in_queue:
            a.queues.discard(queue)
            a.paused.discard(queue)
        elif event == "PAUSE" and in_queue:
            a.queues.add(queue)
            a.paused.add(queue)
        elif event == "UNPAUSE" and in_queue:
            a.queues.add(queue)
            a.paused.discard(queue)
        elif event == "PAUSEALL":
            a.paused = set(a.queues)
        elif event == "UNPAUSEALL":
            a.paused = set()
        elif event in ("AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            a.login = True
        elif event in ("AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            a.login = False
            a.call = None
        else:
            self.tally.skipped[f"{event} without a queue"] += 1
            return []
        out = self._presence(line_id("ast-", line), ts, agent, a)
        if not out:
            self.tally.skipped[f"{event}: agent state unchanged"] += 1
        self.tally.events += len(out)
        return out

    def _presence(self, base: str, ts: str, agent: str, a: _Agent) -> list[dict]:
        now = (a.state(), tuple(sorted(a.queues)))
        if now == a.sent:
            return []
        a.sent = now
        return [{"event_id": base + ":a", "type": "agent.state_changed", "ts": ts, "agent_id": agent,
                 "state": now[0], "queues": list(now[1])}]

    def _sweep(self) -> None:
        """Forget calls with no line for a day of event time (their end was never logged)."""
        self._since_sweep = 0
        horizon = self._newest - FORGET_AFTER
        for callid in [c for c, t in self._calls.items() if t < horizon]:
            del self._calls[callid]
        # A call's offset is kept while it is in progress, or a day after the line that last grew it.
        for callid in [c for c, (_, second) in self._shifted.items() if second < horizon and c not in self._calls]:
            del self._shifted[callid]
