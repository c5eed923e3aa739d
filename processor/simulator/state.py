"""The running simulation's mutable state (agents, streams, contacts) and the records it keeps of
every segment and leg, from which the ground truth is computed."""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from .model import QueueModel

class Agent:
    __slots__ = ("agent_id", "stream", "state", "shown", "on_shift", "next_break_ms", "idle_since", "skew_ms")

    def __init__(self, agent_id: str, stream: "Stream") -> None:
        self.agent_id = agent_id
        self.stream = stream
        self.state = "offline"          # what the agent does; "reserved" while ringing (never published)
        self.shown = ""                 # the state last published (nothing yet)
        self.on_shift = False
        self.next_break_ms: int | None = None
        self.idle_since = 0
        self.skew_ms = 0                # how early this agent's presence source stamps its events


class Stream:
    __slots__ = ("m", "key", "agents", "free", "waiting", "rng", "t_arrival", "transfer_targets",
                 "queues_field")

    def __init__(self, m: QueueModel, seed: int) -> None:
        self.m = m
        self.key = m.key
        self.agents = [Agent(f"{m.queue_id}-{m.channel}-a{i}", self) for i in range(m.agents)]
        # Both lazily cleaned: an entry is live only while its token still matches.
        self.free: deque[tuple[Agent, int]] = deque()        # (agent, idle_since): longest idle first
        self.waiting: deque[tuple[Contact, int]] = deque()   # (contact, segment number): FCFS
        self.rng = random.Random(f"{seed}:arrivals:{m.queue_id}:{m.channel}")
        self.t_arrival = 0.0  # the arrival process's own clock, float milliseconds (slot bounds exact)
        self.transfer_targets: list[Stream] = []
        self.queues_field = [m.queue_id]


class Contact:
    __slots__ = ("cid", "channel", "customer", "issue", "origin", "stream", "seg", "seg_start", "waiting", "agent",
                 "answered_ms", "hold_ms", "talk_end_ms", "transfer_to", "waited_ms", "round", "resolved",
                 "reopened")

    def __init__(self, cid: str, channel: str, customer: str, issue: str, origin: "Stream") -> None:
        self.cid = cid
        self.channel = channel
        self.customer = customer
        self.issue = issue
        self.origin = origin                # where the customer came in: retries and repeats go there
        self.stream: Stream | None = None
        self.seg = 0
        self.seg_start = 0
        self.waiting = False
        self.agent: Agent | None = None
        self.answered_ms = 0
        self.hold_ms = 0
        self.talk_end_ms = 0
        self.transfer_to: Stream | None = None
        self.waited_ms = 0
        self.round = 1
        self.resolved = False
        self.reopened = False


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    queue_id: str
    channel: str
    start_ms: int
    end_ms: int
    outcome: str  # answered, abandoned, flowed_out


@dataclass(frozen=True, slots=True)
class LegRecord:
    queue_id: str
    channel: str
    end_ms: int
    talk_ms: int
    hold_ms: int
    acw_ms: int
