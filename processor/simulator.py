"""A seeded, deterministic contact-center simulation that emits contract events (the sample feed).

Per queue: Poisson arrivals, exponential customer patience (Erlang-A abandonment), a pool of
agents serving first-come first-served, log-normal talk times, optional hold, after-contact work,
and occasional transfers to another queue. Agents publish `agent.state_changed`.
"""
from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Iterator

from .core.events import format_ts


@dataclass(frozen=True)
class QueueModel:
    queue_id: str
    channel: str = "voice"
    arrivals_per_hour: float = 120.0
    agents: int = 5
    mean_talk_seconds: float = 180.0
    mean_patience_seconds: float = 120.0
    mean_acw_seconds: float = 30.0
    hold_probability: float = 0.2
    transfer_probability: float = 0.05


DEFAULT_MODEL = (
    QueueModel("sales", "voice", 150, 10, 200, 90),
    QueueModel("support", "voice", 220, 17, 240, 150),
    QueueModel("support", "chat", 90, 9, 300, 240),
)


@dataclass(order=True)
class _Item:
    at: float
    seq: int
    kind: str = field(compare=False)
    data: dict = field(compare=False, default_factory=dict)


class Simulation:
    """Iterate `events()` for (event_time_seconds, event dict) in event-time order."""

    def __init__(self, models=DEFAULT_MODEL, seed: int = 7, start: float = 1_795_424_400.0,
                 duration_seconds: float = 3600.0, duplicate_probability: float = 0.0):
        self.models = {(m.queue_id, m.channel): m for m in models}
        self.rng = random.Random(seed)
        self.start = start
        self.end = start + duration_seconds
        self.dup_p = duplicate_probability
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._heap: list[_Item] = []
        self.waiting: dict[tuple[str, str], list[str]] = {k: [] for k in self.models}
        self.free_agents: dict[tuple[str, str], list[str]] = {}
        self.contacts: dict[str, dict] = {}

    def _push(self, at: float, kind: str, **data) -> None:
        heapq.heappush(self._heap, _Item(at, next(self._seq), kind, data))

    def _event(self, at: float, type_: str, **fields) -> tuple[float, dict]:
        ev = {"event_id": f"e{next(self._ids)}", "type": type_, "ts": format_ts(round(at * 1000))}
        ev.update({k: v for k, v in fields.items() if v is not None})
        return at, ev

    def events(self) -> Iterator[tuple[float, dict]]:
        for key, m in self.models.items():
            agents = [f"{m.queue_id}-{m.channel}-a{i}" for i in range(m.agents)]
            self.free_agents[key] = list(agents)
            for a in agents:
                yield self._event(self.start, "agent.state_changed", agent_id=a, state="available", queues=[m.queue_id])
            self._push(self.start + self.rng.expovariate(m.arrivals_per_hour / 3600), "arrive", key=key)
        while self._heap:
            item = heapq.heappop(self._heap)
            for at, ev in self._handle(item):
                yield at, ev
                if self.dup_p and self.rng.random() < self.dup_p:
                    yield at, dict(ev)

    def _handle(self, item: _Item):
        at, d = item.at, item.data
        if item.kind == "arrive":
            key = d["key"]
            m = self.models[key]
            if at < self.end:
                self._push(at + self.rng.expovariate(m.arrivals_per_hour / 3600), "arrive", key=key)
                cid = f"c{next(self._ids)}"
                self.contacts[cid] = {"key": key, "customer": f"u{self.rng.randrange(10_000)}"}
                yield self._event(at, "contact.created", contact_id=cid, channel=key[1],
                                  customer_id=self.contacts[cid]["customer"], issue=f"i{self.rng.randrange(20)}")
                yield from self._enqueue(at, cid, key)
        elif item.kind == "give_up":
            cid, key = d["cid"], d["key"]
            if cid in self.waiting[key]:
                self.waiting[key].remove(cid)
                yield self._event(at, "contact.abandoned", contact_id=cid, queue_id=key[0])
        elif item.kind == "hold":
            yield self._event(at, "contact.hold_started", contact_id=d["cid"], agent_id=d["agent"])
            yield self._event(at + d["length"], "contact.hold_ended", contact_id=d["cid"], agent_id=d["agent"])
        elif item.kind == "talk_end":
            yield from self._talk_end(at, d)
        elif item.kind == "acw_end":
            yield self._event(at, "contact.wrapup_ended", contact_id=d["cid"], agent_id=d["agent"])
            yield from self._agent_free(at, d["key"], d["agent"])

    def _enqueue(self, at: float, cid: str, key: tuple[str, str]):
        m = self.models[key]
        yield self._event(at, "contact.queued", contact_id=cid, queue_id=key[0])
        free = self.free_agents[key]
        if free:
            yield from self._connect(at + self.rng.uniform(0.5, 3.0), cid, key, free.pop(0))
        else:
            self.waiting[key].append(cid)
            self._push(at + self.rng.expovariate(1 / m.mean_patience_seconds), "give_up", cid=cid, key=key)

    def _connect(self, at: float, cid: str, key: tuple[str, str], agent: str):
        m = self.models[key]
        yield self._event(at, "contact.answered", contact_id=cid, queue_id=key[0], agent_id=agent)
        yield self._event(at, "agent.state_changed", agent_id=agent, state="busy", queues=[key[0]])
        sigma = 0.6
        talk = self.rng.lognormvariate(math.log(m.mean_talk_seconds) - sigma ** 2 / 2, sigma)
        if self.rng.random() < m.hold_probability:
            start = at + self.rng.uniform(0.2, 0.6) * talk
            self._push(start, "hold", cid=cid, agent=agent, length=min(talk * 0.3, self.rng.expovariate(1 / 40)))
        transfer_to = None
        others = [k for k in self.models if k != key and k[1] == key[1]]
        if others and self.rng.random() < m.transfer_probability:
            transfer_to = self.rng.choice(others)
        self._push(at + talk + 1.0, "talk_end", cid=cid, key=key, agent=agent, transfer_to=transfer_to)

    def _talk_end(self, at: float, d: dict):
        cid, key, agent = d["cid"], d["key"], d["agent"]
        if d["transfer_to"] is not None:
            to = d["transfer_to"]
            yield self._event(at, "contact.transferred", contact_id=cid, agent_id=agent, to_queue_id=to[0])
            yield from self._agent_free(at, key, agent)
            yield from self._enqueue(at + 0.5, cid, to)
            return
        m = self.models[key]
        yield self._event(at, "contact.wrapup_started", contact_id=cid, agent_id=agent)
        yield self._event(at, "agent.state_changed", agent_id=agent, state="acw", queues=[key[0]])
        self._push(at + self.rng.expovariate(1 / m.mean_acw_seconds), "acw_end", key=key, agent=agent, cid=cid)

    def _agent_free(self, at: float, key: tuple[str, str], agent: str):
        if self.waiting[key]:
            cid = self.waiting[key].pop(0)
            yield from self._connect(at + 0.5, cid, key, agent)
        else:
            self.free_agents[key].append(agent)
            yield self._event(at, "agent.state_changed", agent_id=agent, state="available", queues=[key[0]])


def sorted_events(sim: Simulation) -> list[dict]:
    """All events in event-time order (the simulation yields some slightly ahead of the clock)."""
    return [ev for _, ev in sorted(sim.events(), key=lambda p: p[0])]
