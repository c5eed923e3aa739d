"""Stage one: per-contact and per-agent state, keyed as the input topic is (contact_id / agent_id).

Turns lifecycle events into fact changes ("deltas") for stage two, which is keyed by queue.
A delta is (fact_id, queue_id, fact or None); None deletes the fact. Deltas are idempotent
upserts, so re-sending them (after a crash, or for a duplicate event) never double counts.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from .events import CONTACT_TYPES, Event, event_from_state, event_to_state
from .segments import Fact, derive_facts, is_settled
from .settings import EngineSettings

Delta = tuple[str, str, Fact | None]


@dataclass(slots=True)
class DeadLetter:
    event: Event
    reason: str  # bounded label: impossible_order, too_late
    detail: str


@dataclass(slots=True)
class StageOneResult:
    deltas: list[Delta] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicate: bool = False


class ContactState:
    """A contact's deduplicated events in event-time order, and the facts last sent downstream."""

    __slots__ = ("events", "ids", "facts", "last_ms")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ids: set[str] = set()
        self.facts: dict[str, Fact] = {}
        self.last_ms = 0

    def to_state(self) -> dict:
        return {"events": [event_to_state(e) for e in self.events],
                "facts": {k: list(v) for k, v in self.facts.items()}}

    @classmethod
    def from_state(cls, d: dict) -> "ContactState":
        s = cls()
        s.events = [event_from_state(e) for e in d["events"]]
        s.ids = {e.event_id for e in s.events}
        s.facts = {k: tuple(v) for k, v in d["facts"].items()}
        s.last_ms = max((e.ts_ms for e in s.events), default=0)
        return s


class AgentState:
    """Latest presence of one agent by event time; emits one presence fact per queue it serves."""

    __slots__ = ("ts_ms", "event_id", "state", "queues", "capacity")

    def __init__(self, ts_ms: int, event_id: str, state: str, queues: tuple[str, ...], capacity: int | None):
        self.ts_ms, self.event_id, self.state, self.queues, self.capacity = ts_ms, event_id, state, queues, capacity

    def to_state(self) -> list:
        return [self.ts_ms, self.event_id, self.state, list(self.queues), self.capacity]

    @classmethod
    def from_state(cls, d: list) -> "AgentState":
        return cls(d[0], d[1], d[2], tuple(d[3]), d[4])


def diff(contact_id: str, old: dict[str, Fact], new: dict[str, Fact]) -> list[Delta]:
    out: list[Delta] = []
    for fid, fact in old.items():
        if fid not in new:
            out.append((fid, fact[1], None))
    for fid, fact in new.items():
        if old.get(fid) != fact:
            out.append((fid, fact[1], fact))
    return out


class ContactBook:
    """Stage-one state of one partition: contacts and agents, plus this partition's stream time.

    `dirty_contacts` / `dirty_agents` name the keys whose state changed (None value = deleted),
    so a shell can persist exactly those.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.contacts: dict[str, ContactState] = {}
        self.agents: dict[str, AgentState] = {}
        self.stream_ms = 0
        self.dirty_contacts: set[str] = set()
        self.dirty_agents: set[str] = set()
        self._with_orphans: set[str] = set()

    # -- input -----------------------------------------------------------------
    def ingest(self, e: Event) -> StageOneResult:
        res = StageOneResult()
        if self.stream_ms and e.ts_ms < self.stream_ms - self.settings.retention_ms:
            res.dead_letters.append(DeadLetter(e, "too_late", "event time is older than the state retention"))
            return res
        if e.ts_ms > self.stream_ms:
            self.stream_ms = e.ts_ms
        if e.type in CONTACT_TYPES:
            self._ingest_contact(e, res)
        elif e.type == "agent.state_changed":
            self._ingest_agent(e, res)
        # customer.* carries no queue fact for stage two.
        self._expire_orphans(res)
        return res

    def _ingest_contact(self, e: Event, res: StageOneResult) -> None:
        cid = e.contact_id
        st = self.contacts.get(cid)
        if st is None:
            st = self.contacts[cid] = ContactState()
        elif e.event_id in st.ids:
            res.duplicate = True
            # Re-assert current facts: harmless downstream, and repairs a send lost in a crash.
            res.deltas.extend((fid, f[1], f) for fid, f in st.facts.items())
            return
        st.ids.add(e.event_id)
        key = e.sort_key()
        if not st.events or st.events[-1].sort_key() <= key:
            st.events.append(e)
        else:
            bisect.insort(st.events, e, key=Event.sort_key)
        if e.ts_ms > st.last_ms:
            st.last_ms = e.ts_ms
        self._rederive(cid, st, res)

    def _rederive(self, cid: str, st: ContactState, res: StageOneResult) -> None:
        facts, orphans = derive_facts(cid, st.events)
        res.deltas.extend(diff(cid, st.facts, facts))
        st.facts = facts
        if orphans:
            self._with_orphans.add(cid)
        else:
            self._with_orphans.discard(cid)
        self.dirty_contacts.add(cid)

    def _expire_orphans(self, res: StageOneResult) -> None:
        """Events still unmatched once the lateness has passed are impossible orders: dead-letter them."""
        if not self._with_orphans:
            return
        horizon = self.stream_ms - self.settings.lateness_ms
        for cid in list(self._with_orphans):
            st = self.contacts[cid]
            _, orphans = derive_facts(cid, st.events)
            expired = [(e, why) for e, why in orphans if e.ts_ms < horizon]
            if not expired:
                continue
            for e, why in expired:
                res.dead_letters.append(DeadLetter(e, "impossible_order", why))
                st.events.remove(e)
            self._rederive(cid, st, res)

    def _ingest_agent(self, e: Event, res: StageOneResult) -> None:
        old = self.agents.get(e.agent_id)
        if old is not None and (old.ts_ms, old.event_id) >= (e.ts_ms, e.event_id):
            res.duplicate = old.event_id == e.event_id
            return  # older presence than what we hold: superseded, changes nothing
        new = AgentState(e.ts_ms, e.event_id, e.state, tuple(dict.fromkeys(e.queues)), e.capacity)
        self.agents[e.agent_id] = new
        self.dirty_agents.add(e.agent_id)
        old_queues = set(old.queues) if old else set()
        for q in old_queues - set(new.queues):
            res.deltas.append((f"a|{e.agent_id}|{q}", q, None))
        for q in new.queues:
            res.deltas.append((f"a|{e.agent_id}|{q}", q, ("agent", q, e.agent_id, e.state, e.ts_ms)))

    # -- housekeeping ----------------------------------------------------------
    def expire(self) -> int:
        """Forget settled contacts whose last event is older than the retention. Returns how many."""
        cutoff = self.stream_ms - self.settings.retention_ms
        gone = [cid for cid, st in self.contacts.items()
                if st.last_ms < cutoff and cid not in self._with_orphans and is_settled(st.facts, st.events)]
        for cid in gone:
            del self.contacts[cid]
            self.dirty_contacts.add(cid)
        return len(gone)

    def take_dirty(self) -> tuple[dict[str, dict | None], dict[str, list | None]]:
        """Serialised state of every key changed since the last call (None = delete)."""
        contacts = {cid: (self.contacts[cid].to_state() if cid in self.contacts else None) for cid in self.dirty_contacts}
        agents = {aid: (self.agents[aid].to_state() if aid in self.agents else None) for aid in self.dirty_agents}
        self.dirty_contacts.clear()
        self.dirty_agents.clear()
        return contacts, agents

    def restore_contact(self, cid: str, state: dict) -> None:
        st = self.contacts[cid] = ContactState.from_state(state)
        self.stream_ms = max(self.stream_ms, st.last_ms)
        if derive_facts(cid, st.events)[1]:
            self._with_orphans.add(cid)

    def restore_agent(self, aid: str, state: list) -> None:
        a = self.agents[aid] = AgentState.from_state(state)
        self.stream_ms = max(self.stream_ms, a.ts_ms)
