"""Stage one: per-contact and per-agent state, keyed as the input topic is (contact_id / agent_id).

Turns lifecycle events into fact changes ("deltas") for the books downstream. A delta is
(fact_id, routing key, fact or None); None deletes the fact. Deltas are idempotent upserts, so
re-sending them (after a crash, or for a duplicate event) never double counts. Three routes:
  deltas           by queue: segments, legs, agent presence per queue, experience facts (stage two)
  agent_deltas     by agent: state changes and handled legs of each agent (stage two, agent_interval)
  journey_deltas   by customer: each contact's journey and churns (the journey book: resolution, retention)
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass
from typing import Any

from .events import CONTACT_TYPES, TYPE_RANK, Event, event_from_state, event_to_state
from .profile import PROFILE_TYPES, compact, is_profile_event, profile_facts
from .publish import take_keys
from .segments import FACT_TYPES, Fact, derive_facts, fact_from_json
from .settings import EngineSettings
from .staffing import apt_id

Delta = tuple[str, str, Fact | None]


@dataclass(slots=True)
class DeadLetter:
    event: Event
    reason: str  # bounded label: impossible_order, too_late
    detail: str


class StageOneResult:
    """What one event changed: fact deltas on each route, dead letters, and whether it was a duplicate."""

    __slots__ = ("deltas", "dead_letters", "duplicate", "agent_deltas", "journey_deltas")

    def __init__(self) -> None:  # one per event: a plain __init__ is cheaper than a dataclass's factories
        self.deltas: list[Delta] = []
        self.dead_letters: list[DeadLetter] = []
        self.duplicate = False
        self.agent_deltas: list[Delta] = []
        self.journey_deltas: list[Delta] = []


_CONTACT_TYPES = frozenset(CONTACT_TYPES)
_AGENT_REPLIED = "message.agent_replied"


class ContactState:
    """A contact's deduplicated events in event-time order, and the facts last sent downstream.

    `events` are the events of the contact in progress (kept for the retention once settled);
    `cold` the profile events kept after that (see profile.py), for the recontact window.
    `facts` (queue facts), `afacts` (agent legs) and `pfacts` (experience and journey facts) are
    what was last sent on each route. `until`: None when nothing is open (no segment waiting, no
    leg awaiting its end), else the event time at which what is open goes stale (segments.NEVER
    when it has no staleness limit); derived with the facts, not stored.
    """

    __slots__ = ("events", "ids", "facts", "last_ms", "cold", "afacts", "pfacts", "until")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ids: set[str] = set()
        self.facts: dict[str, Fact] = {}
        self.last_ms = 0
        self.cold: list[Event] = []
        self.afacts: dict[str, Fact] = {}
        self.pfacts: dict[str, Fact] = {}
        self.until: float | None = None

    def profile_events(self) -> list[Event]:
        # is_profile_event, inlined: called on every profile event of a contact in progress
        hot = [e for e in self.events if e.type in PROFILE_TYPES and not (e.type == _AGENT_REPLIED and e.automated)]
        if not self.cold:
            return hot
        return sorted(self.cold + hot, key=Event.sort_key)

    def channel_hint(self) -> str | None:
        """The channel of a contact.created seen before its in-progress state was expired."""
        for e in self.cold:
            if e.type == "contact.created" and e.channel:
                return e.channel
        return None

    def to_state(self) -> dict:
        d: dict = {"events": [event_to_state(e) for e in self.events],
             "facts": {k: list(v) for k, v in self.facts.items()}}
        if self.cold:
            d["cold"] = [event_to_state(e) for e in self.cold]
        if self.afacts:
            d["afacts"] = {k: list(v) for k, v in self.afacts.items()}
        if self.pfacts:
            d["pfacts"] = {k: list(v) for k, v in self.pfacts.items()}
        if not self.events:
            d["last_ms"] = self.last_ms
        return d

    @classmethod
    def from_state(cls, d: dict) -> "ContactState":
        s = cls()
        s.events = [event_from_state(e) for e in d["events"]]
        s.cold = [event_from_state(e) for e in d.get("cold", ())]
        s.ids = {e.event_id for e in s.events} | {e.event_id for e in s.cold}
        s.facts = {k: fact_from_json(v) for k, v in d["facts"].items()}
        s.afacts = {k: fact_from_json(v) for k, v in d.get("afacts", {}).items()}
        s.pfacts = {k: fact_from_json(v) for k, v in d.get("pfacts", {}).items()}
        s.last_ms = max((e.ts_ms for e in s.events), default=d.get("last_ms", 0))
        if s.cold:
            s.last_ms = max(s.last_ms, max(e.ts_ms for e in s.cold))
        return s


ID_SEP = "\x1f"  # between the agent id and the event id in the key of a remembered agent event id


class AgentState:
    """Latest presence of one agent by event time; emits one presence fact per queue it serves.

    `recent`: the agent's state changes within the retention (event id -> (ts, state)), so that a
    repeated event id, even with other content, changes nothing (contract §1). They are persisted
    one key per id (ContactBook.take_dirty_agent_ids), not with the state: a busy agent has
    hundreds within the retention, and rewriting them all with every change cost more than the
    rest of stage one.
    """

    __slots__ = ("ts_ms", "event_id", "state", "queues", "capacity", "recent")

    def __init__(self, ts_ms: int, event_id: str, state: str, queues: tuple[str, ...], capacity: int | None,
                 recent: dict[str, tuple[int, str]] | None = None):
        self.ts_ms, self.event_id, self.state, self.queues, self.capacity = ts_ms, event_id, state, queues, capacity
        self.recent = recent if recent is not None else {}

    def to_state(self) -> list:
        return [self.ts_ms, self.event_id, self.state, list(self.queues), self.capacity]

    @classmethod
    def from_state(cls, d: list) -> "AgentState":
        recent = {eid: (ts, state) for eid, ts, state in d[5]} if len(d) > 5 else {}  # written before ids had keys
        return cls(d[0], d[1], d[2], tuple(d[3]), d[4], recent)


class CustomerState:
    """The `customer.churned` event ids of one customer within the retention (event id -> event time),
    so that a repeated id, even with other content, changes nothing and counts as a duplicate (contract
    §1), as for an agent's state changes. Keyed by customer, as the input topic is."""

    __slots__ = ("churns",)

    def __init__(self, churns: dict[str, int] | None = None) -> None:
        self.churns: dict[str, int] = churns if churns is not None else {}

    def to_state(self) -> list:
        return [[eid, ts] for eid, ts in self.churns.items()]

    @classmethod
    def from_state(cls, d: list) -> "CustomerState":
        return cls({eid: ts for eid, ts in d})


def split_profile(deltas: list[Delta], res: "StageOneResult") -> None:
    """Profile deltas go by queue (experience facts), by agent (scores of an agent) or by customer (journey facts)."""
    for d in deltas:
        fid = d[0]
        if fid.startswith("j|"):
            res.journey_deltas.append(d)
        elif fid.startswith(("av|", "ak|")):
            res.agent_deltas.append(d)
        else:
            res.deltas.append(d)


def diff(contact_id: str, old: dict[str, Fact], new: dict[str, Fact]) -> list[Delta]:
    out: list[Delta] = []
    for fid, fact in old.items():
        if fid not in new:
            out.append((fid, fact[1], None))
    for fid, fact in new.items():
        was = old.get(fid)
        if was != fact:
            if was is not None and was[1] != fact[1]:
                out.append((fid, was[1], None))  # moved to another route: delete it where it was first
            out.append((fid, fact[1], fact))
    return out


class ContactBook:
    """Stage-one state of one partition: contacts, agents and customers (their churn ids), plus this
    partition's stream time.

    `dirty_contacts` / `dirty_agents` / `dirty_customers` name the keys whose state changed (None
    value = deleted), so a shell can persist exactly those.
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.contacts: dict[str, ContactState] = {}
        self.agents: dict[str, AgentState] = {}
        self.customers: dict[str, CustomerState] = {}
        self.dirty_customers: set[str] = set()
        self._shortest = settings.min_stale_after()  # see derive_facts
        # Contacts no longer in progress whose profile is kept for the recontact window (events == []).
        self.profiles: dict[str, ContactState] = {}
        self.stream_ms = 0
        self.dirty_contacts: set[str] = set()
        self.dirty_agents: set[str] = set()
        self.dirty_agent_ids: dict[tuple[str, str], tuple[int, str] | None] = {}  # (agent, event id) -> (ts, state)
        self.dirty_profiles: set[str] = set()
        self._with_orphans: set[str] = set()
        # contact -> orphan event id -> stream time when it arrived: an orphan gets the lateness of
        # stream progress after its arrival, not only after its own time, so a source running ahead
        # of the others cannot make another source's early answer "impossible" before its queued arrives.
        self._orphan_since: dict[str, dict[str, int]] = {}
        # (last event time, contact id) of the profiles held, a heap: expire() visits only those past the
        # horizon. Entries of profiles that left (or came back with another last_ms) are skipped then.
        self._profile_heap: list[tuple[int, str]] = []

    # -- input -----------------------------------------------------------------
    def ingest(self, e: Event) -> StageOneResult:
        res = StageOneResult()
        if self.stream_ms and e.ts_ms < self.stream_ms - self.settings.retention_ms:
            res.dead_letters.append(DeadLetter(e, "too_late", "event time is older than the state retention"))
            return res
        if e.ts_ms > self.stream_ms:
            self.stream_ms = e.ts_ms
        t = e.type
        if t in _CONTACT_TYPES:
            self._ingest_contact(e, res)
        elif t == "agent.state_changed":
            self._ingest_agent(e, res)
        elif t == "customer.churned":
            self._ingest_churn(e, res)
        if self._with_orphans:
            self._expire_orphans(res)
        return res

    def _ingest_contact(self, e: Event, res: StageOneResult) -> None:
        cid = e.contact_id
        assert cid is not None  # the decoder requires it of every contact event
        st = self.contacts.get(cid)
        cold = st is None and cid in self.profiles
        if cold:
            st = self.profiles[cid]
        if st is not None and e.event_id in st.ids:
            res.duplicate = True
            # Re-assert current facts: harmless downstream, and repairs a send lost in a crash.
            res.deltas.extend((fid, f[1], f) for fid, f in st.facts.items())
            res.agent_deltas.extend((fid, f[1], f) for fid, f in st.afacts.items())
            split_profile([(fid, f[1], f) for fid, f in st.pfacts.items()], res)
            return
        if st is None:
            st = self.contacts[cid] = ContactState()
        elif cold:  # seen before, no longer in progress: in progress again, with its profile
            del self.profiles[cid]
            self.dirty_profiles.add(cid)
            self.contacts[cid] = st
        st.ids.add(e.event_id)
        t = e.type
        events = st.events
        at_end = True
        if events:
            last = events[-1]  # Event.sort_key, inlined (in order is the common case)
            if last.ts_ms < e.ts_ms or \
                    (last.ts_ms, TYPE_RANK.get(last.type, 50), last.event_id) <= (e.ts_ms, TYPE_RANK.get(t, 50), e.event_id):
                events.append(e)
            else:
                bisect.insort(events, e, key=Event.sort_key)
                at_end = False
        else:
            events.append(e)
        if e.ts_ms > st.last_ms:
            st.last_ms = e.ts_ms
        if t in FACT_TYPES or st.until is not None or not at_end:
            self._rederive(cid, st, res)
        else:
            # Any other type, after every event, with nothing open: it pairs nothing and renews nothing
            # (staleness counts from the last event only while something is open), so the facts, legs,
            # orphans and `until` stay what they were. Before other events it may fill a gap: derived.
            self.dirty_contacts.add(cid)
        if t in PROFILE_TYPES and not (t == _AGENT_REPLIED and e.automated):  # is_profile_event
            self._reprofile(cid, st, res)

    def _derive(self, cid: str, st: ContactState, leg_agents: dict[str, str] | None = None):
        """derive_facts of the contact (with the channel its profile remembers, and staleness); sets st.until."""
        status: dict = {}
        out = derive_facts(cid, st.events, channel=st.channel_hint() if st.cold else None,
                           leg_agents=leg_agents, settings=self.settings, status=status, shortest=self._shortest)
        st.until = status["open_until"]
        return out

    def _rederive(self, cid: str, st: ContactState, res: StageOneResult) -> None:
        leg_agents: dict[str, str] = {}
        facts, orphans = self._derive(cid, st, leg_agents)
        if facts != st.facts:
            res.deltas.extend(diff(cid, st.facts, facts))
            st.facts = facts
        afacts = {"al" + fid[1:]: ("aleg", leg_agents[fid], f[3], f[4] + f[5] + f[6])
                  for fid, f in facts.items() if f[0] == "leg"}
        if afacts != st.afacts:
            res.agent_deltas.extend(diff(cid, st.afacts, afacts))
            st.afacts = afacts
        if orphans:
            self._with_orphans.add(cid)
            since = self._orphan_since.setdefault(cid, {})
            for e, _why in orphans:
                since.setdefault(e.event_id, self.stream_ms)
        elif cid in self._with_orphans:
            self._with_orphans.discard(cid)
            self._orphan_since.pop(cid, None)
        self.dirty_contacts.add(cid)

    def _reprofile(self, cid: str, st: ContactState, res: StageOneResult) -> None:
        exp, journey = profile_facts(cid, st.profile_events())
        exp.update(journey)
        if exp != st.pfacts:
            split_profile(diff(cid, st.pfacts, exp), res)
            st.pfacts = exp

    def _expire_orphans(self, res: StageOneResult) -> None:
        """Events still unmatched once the lateness has passed (since their time, and since their
        arrival) are impossible orders: dead-letter them."""
        if not self._with_orphans:
            return
        horizon = self.stream_ms - self.settings.lateness_ms
        for cid in list(self._with_orphans):
            st = self.contacts[cid]
            _, orphans = self._derive(cid, st)
            since = self._orphan_since.get(cid, {})
            expired = [(e, why) for e, why in orphans if max(e.ts_ms, since.get(e.event_id, 0)) < horizon]
            if not expired:
                continue
            for e, why in expired:
                res.dead_letters.append(DeadLetter(e, "impossible_order", why))
                st.events.remove(e)
            self._rederive(cid, st, res)
            if any(is_profile_event(e) for e, _ in expired):
                self._reprofile(cid, st, res)

    def _ingest_churn(self, e: Event, res: StageOneResult) -> None:
        """The churn is a fact of its own (idempotent by event id); its id is kept for the retention."""
        customer = e.customer_id
        assert customer is not None  # the decoder requires it of a churn
        fid = f"ch|{e.event_id}"
        cust = self.customers.get(customer)
        seen = cust.churns.get(e.event_id) if cust is not None else None
        if seen is not None:
            # A repeat, whatever it says now: re-assert what the first one said (repairs a lost send).
            res.duplicate = True
            res.journey_deltas.append((fid, customer, ("churn", customer, seen)))
            return
        if cust is None:
            cust = self.customers[customer] = CustomerState()
        cust.churns[e.event_id] = e.ts_ms
        self.dirty_customers.add(customer)
        res.journey_deltas.append((fid, customer, ("churn", customer, e.ts_ms)))

    def _ingest_agent(self, e: Event, res: StageOneResult) -> None:
        # Every state change is a point of the agent's timeline (agent_interval), even one older
        # than the presence held here: idempotent by event id.
        agent_id, state = e.agent_id, e.state
        assert agent_id is not None and state is not None  # the decoder requires both
        fid = f"as|{agent_id}|{e.event_id}"
        old = self.agents.get(agent_id)
        if old is not None:
            seen = old.recent.get(e.event_id)
            if seen is not None or old.event_id == e.event_id:
                # A repeat, whatever it says now: re-assert what the first one said (repairs a lost send).
                res.duplicate = True
                ts, state = seen if seen is not None else (old.ts_ms, old.state)
                res.agent_deltas.append((fid, agent_id, ("ast", agent_id, ts, state)))
                return
        res.agent_deltas.append((fid, agent_id, ("ast", agent_id, e.ts_ms, state)))
        # ... and of its presence in each queue it lists (queue_interval staffed_agents), routed by queue
        for q in dict.fromkeys(e.queues):
            res.deltas.append((apt_id(agent_id, e.event_id, q), q, ("apt", q, agent_id, e.ts_ms, e.event_id, state)))
        self.dirty_agent_ids[(agent_id, e.event_id)] = (e.ts_ms, state)
        if old is not None and (old.ts_ms, old.event_id) >= (e.ts_ms, e.event_id):
            old.recent[e.event_id] = (e.ts_ms, state)
            return  # older presence than what we hold: superseded, changes nothing
        new = AgentState(e.ts_ms, e.event_id, state, tuple(dict.fromkeys(e.queues)), e.capacity,
                         old.recent if old is not None else {})
        new.recent[e.event_id] = (e.ts_ms, state)
        self.agents[agent_id] = new
        self.dirty_agents.add(agent_id)
        if old is not None:
            for q in set(old.queues) - set(new.queues):
                res.deltas.append((f"a|{agent_id}|{q}", q, None))
                # it stops serving q: offline there from now on (for staffed_agents)
                res.deltas.append((apt_id(agent_id, e.event_id, q), q, ("apt", q, agent_id, e.ts_ms, e.event_id, "offline")))
        for q in new.queues:
            res.deltas.append((f"a|{agent_id}|{q}", q, ("agent", q, agent_id, state, e.ts_ms, e.capacity)))

    # -- housekeeping ----------------------------------------------------------
    def expire(self, limit: int | None = None) -> int:
        """Forget contacts whose last event is older than the retention and that are settled, or stale
        (whatever is open went stale more than the retention ago). Returns how many items it processed
        (contacts moved to profiles, profiles dropped); with `limit`, at most that many: a return equal
        to `limit` means more may be due (call again), so a worker can cut the pass into short slices.

        A stale contact is freed only when any event that could still pair with what was open (one
        within the staleness limit of its last event) is older than the retention, hence too late:
        a later event finds nothing open either way (segments.derive_facts), so when expiry runs
        changes no figure. What their experience and resolution figures still need (the profile) is
        kept until the contact's last event is the recontact window W (at least the retention)
        behind stream time.
        """
        budget = limit if limit is not None else -1
        cutoff = self.stream_ms - self.settings.retention_ms
        gone = [cid for cid, st in self.contacts.items()
                if st.last_ms < cutoff and cid not in self._with_orphans and (st.until is None or st.until < cutoff)]
        if budget >= 0:
            gone = gone[:budget]
        for cid in gone:
            st = self.contacts.pop(cid)
            self.dirty_contacts.add(cid)
            st.cold = compact(st.profile_events())
            if st.cold or st.pfacts:
                st.events, st.facts, st.afacts = [], {}, {}
                st.ids = {e.event_id for e in st.cold}
                self.profiles[cid] = st
                self.dirty_profiles.add(cid)
                heapq.heappush(self._profile_heap, (st.last_ms, cid))
        done = len(gone)
        if done == budget:
            return done
        for aid, agent in self.agents.items():  # an id older than the retention is too late anyway
            old_ids = [eid for eid, (ts, _) in agent.recent.items() if ts < cutoff]
            for eid in old_ids:
                del agent.recent[eid]
                self.dirty_agent_ids[(aid, eid)] = None
        for customer in [c for c, cust in self.customers.items() if any(ts < cutoff for ts in cust.churns.values())]:
            cust = self.customers[customer]  # likewise for churn ids
            cust.churns = {eid: ts for eid, ts in cust.churns.items() if ts >= cutoff}
            if not cust.churns:
                del self.customers[customer]
            self.dirty_customers.add(customer)
        # Profiles by last event time (a heap: a profile's last_ms does not change while held; entries of
        # profiles that left or came back are skipped): only those past the horizon are visited.
        horizon = self.stream_ms - max(self.settings.recontact_window_ms, self.settings.retention_ms)
        heap, profiles = self._profile_heap, self.profiles
        while heap and heap[0][0] < horizon and done != budget:
            last_ms, cid = heapq.heappop(heap)
            held = profiles.get(cid)
            if held is None or held.last_ms != last_ms:
                continue
            del profiles[cid]
            self.dirty_profiles.add(cid)
            done += 1
        return done

    def take_dirty(self, limit: int | None = None) -> tuple[dict[str, dict | None], dict[str, list | None]]:
        """Serialised state of every key changed since the last call (None = delete). With `limit`, at
        most that many keys in all (contacts first); the rest stay dirty for the next call."""
        contacts = {cid: (self.contacts[cid].to_state() if cid in self.contacts else None)
                    for cid in take_keys(self.dirty_contacts, limit)}
        left = None if limit is None else limit - len(contacts)
        agents = {aid: (self.agents[aid].to_state() if aid in self.agents else None)
                  for aid in take_keys(self.dirty_agents, left)}
        return contacts, agents

    def take_dirty_agent_ids(self, limit: int | None = None) -> dict[str, list | None]:
        """The agent event ids added or forgotten since the last call, one key each ("agent\x1fevent id");
        with `limit`, at most that many."""
        dirty = self.dirty_agent_ids
        if limit is None or len(dirty) <= limit:
            out = {f"{aid}{ID_SEP}{eid}": (list(v) if v is not None else None) for (aid, eid), v in dirty.items()}
            dirty.clear()
            return out
        out = {}
        for _ in range(limit):
            (aid, eid), v = dirty.popitem()
            out[f"{aid}{ID_SEP}{eid}"] = list(v) if v is not None else None
        return out

    def restore_agent_id(self, key: str, value: list) -> None:
        """After restore_agent: one remembered event id of that agent (see take_dirty_agent_ids)."""
        aid, _, eid = key.partition(ID_SEP)
        agent = self.agents.get(aid)
        if agent is not None:
            agent.recent[eid] = (value[0], value[1])

    def clear_dirty(self) -> None:
        """Nothing persists (replay): forget which keys changed."""
        self.dirty_contacts.clear()
        self.dirty_agents.clear()
        self.dirty_agent_ids.clear()
        self.dirty_profiles.clear()
        self.dirty_customers.clear()

    def take_dirty_customers(self, limit: int | None = None) -> dict[str, list | None]:
        return {c: (self.customers[c].to_state() if c in self.customers else None)
                for c in take_keys(self.dirty_customers, limit)}

    def take_dirty_profiles(self, limit: int | None = None) -> dict[str, dict | None]:
        return {cid: (self.profiles[cid].to_state() if cid in self.profiles else None)
                for cid in take_keys(self.dirty_profiles, limit)}

    def restore_profile(self, cid: str, state: dict) -> None:
        st = self.profiles[cid] = ContactState.from_state(state)
        heapq.heappush(self._profile_heap, (st.last_ms, cid))
        self.stream_ms = max(self.stream_ms, st.last_ms)

    def restore_contact(self, cid: str, state: dict) -> None:
        st = self.contacts[cid] = ContactState.from_state(state)
        self.stream_ms = max(self.stream_ms, st.last_ms)
        if self._derive(cid, st)[1]:
            self._with_orphans.add(cid)

    def restore_customer(self, customer: str, state: list) -> None:
        cust = self.customers[customer] = CustomerState.from_state(state)
        if cust.churns:
            self.stream_ms = max(self.stream_ms, max(cust.churns.values()))

    def restore_agent(self, aid: str, state: list) -> None:
        a = self.agents[aid] = AgentState.from_state(state)
        self.stream_ms = max(self.stream_ms, a.ts_ms)
