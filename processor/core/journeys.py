"""Customer journeys: per-contact FCR / repeat / reopen flags and per-customer retention, keyed by customer.

Keyed by customer (the streaming shell routes journey facts by customer_id), because a repeat is
a matter of one customer's contacts across calls, chats and tickets, wherever they were keyed.
The flags are summed per queue, channel and day elsewhere (resolution.py, in stage two), so the
book emits *contributions* as facts routed by queue, like stage one does.

Facts in (from profile.py and stage one):
  ("contact", customer, issue, created_ms, channel, first_queue, resolved_ms, reopened_ms)   fact id j|<contact id>
  ("churn", customer, ts_ms)                                                                 fact id ch|<event id>
  ("seen", customer, queue, channel, created_ms)   what a contact becomes once no resolution day
                                                   it touches can change any more: retention still needs it
Facts out (routed by queue, summed by resolution.ResolutionBook):
  ("res", queue, channel, day_start, day_end, contacts, repeats, first, fcr, resolved, reopened)   id rs|<contact id>
  ("ret", queue, channel, day_start, day_end, churned within each horizon...)                     id rt|<customer>|<queue>|<channel>|<day>

Definitions (contract §2, W = recontact window; "within W" of an instant t is [t, t + W)):
- a customer's contacts are ordered by (created, contact id); two contacts *match* when they have
  the same issue, or either has no issue;
- a contact is a **repeat** if a matching contact of the same customer was created before it,
  less than W earlier; a **first contact** otherwise;
- **resolved**: its first contact.resolved is less than W after its creation; **reopened**: it is
  resolved and its first contact.reopened is less than W after its creation;
- a first contact is **first-contact resolved** if resolved, not reopened, and no matching contact
  of the customer followed it less than W after its creation;
- each contact counts under (its first queue or `none`, its channel, the local day of its creation
  in that queue's time zone);
- retention: a customer with a contact created in a (queue, channel, day) *churned within h days*
  if a customer.churned is at or after their first such contact and less than h days after it.
"""
from __future__ import annotations

import bisect
import heapq

from .calendar import local_day_bounds
from .profile import NO_QUEUE
from .publish import SourceClock
from .resolution import DayEndIndex
from .segments import fact_from_json
from .settings import DAY_MS, EngineSettings

JOURNEY_KINDS = frozenset({"contact", "churn", "seen"})
LONGEST_DAY_MS = 25 * 3_600_000  # a local day is 23, 24 or 25 hours long

Group = tuple[str, str, int, int]  # (queue, channel, local day start, local day end)
Delta = tuple[str, str, tuple | None]


def _matches(issue_a: str | None, issue_b: str | None) -> bool:
    return issue_a is None or issue_b is None or issue_a == issue_b


class Customer:
    __slots__ = ("contacts", "order", "seen", "churns", "contrib", "ret_contrib", "groups")

    def __init__(self) -> None:
        self.contacts: dict[str, tuple] = {}         # contact id -> contact fact
        self.order: list[tuple[int, str]] = []       # (created, contact id), sorted
        self.seen: dict[str, tuple] = {}             # contact id -> seen fact
        self.groups: dict[str, tuple[Group, int]] = {}  # contact id -> (group, created) of its contact or seen fact
        self.churns: dict[str, int] = {}             # fact id -> ts
        self.contrib: dict[str, tuple] = {}          # contact id -> "res" fact last emitted
        self.ret_contrib: dict[Group, tuple] = {}    # group -> "ret" fact last emitted

    def empty(self) -> bool:
        return not (self.contacts or self.seen or self.churns or self.contrib or self.ret_contrib)


def _fact_time(f: tuple) -> int:
    """What a journey fact's horizons count from: a contact's or seen contact's creation, a churn's time."""
    kind = f[0]
    return f[3] if kind == "contact" else f[4] if kind == "seen" else f[2]


def _pop_due(by_time: dict[str, list[tuple[int, str]]], kind: str, before: int, facts: dict[str, tuple]) -> list:
    """(fact id, fact) of the facts of `kind` whose time is below `before`, popped from their time
    heap; an entry of a fact changed or gone since, or seen twice (a fact changed back to an earlier
    time has two entries), is dropped."""
    heap = by_time[kind]
    due: list = []
    taken: set[str] = set()
    while heap and heap[0][0] < before:
        t, fid = heapq.heappop(heap)
        f = facts.get(fid)
        if f is not None and f[0] == kind and _fact_time(f) == t and fid not in taken:
            taken.add(fid)
            due.append((fid, f))
    return due


class JourneyBook(SourceClock):
    """Journey state of one partition (any number of customers)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.init_clock()
        self.facts: dict[str, tuple] = {}
        self.customers: dict[str, Customer] = {}
        self.deltas: list[Delta] = []      # facts out since the last take_deltas(), routed by queue
        self.dirty_facts: set[str] = set()
        self._res_floor = -1   # days ended at or before this can no longer change: nothing is emitted for them
        self._ret_floor = -1
        self._emit = True      # False while restoring: what was emitted before is downstream already
        self._horizons_ms = tuple(h * DAY_MS for h in settings.retention_horizons_days)
        self._no_churn = (0,) * len(self._horizons_ms)  # churned within no horizon
        self._zones: dict[str, str] = {}  # queue -> its time zone
        # The customers by the day end of a contribution they hold (listed again for each new one)
        self._by_end: dict[str, DayEndIndex] = {"res": DayEndIndex(), "ret": DayEndIndex()}
        # The facts by the time expire() compares with its horizons, oldest first: contact facts by
        # creation, seen facts by creation, churns by time. Entries of facts changed or gone since are
        # skipped when they come up. expire() then visits what it drops, not every fact it holds: a
        # scan of every fact took 0.33 s per pass at 95 days of a simulated center (755,000 facts).
        self._by_time: dict[str, list[tuple[int, str]]] = {"contact": [], "seen": [], "churn": []}

    # -- facts in -------------------------------------------------------------------------------
    def apply(self, fact_id: str, fact: tuple | None, route: str | None = None) -> None:
        old = self.facts.get(fact_id)
        if fact is None and route is not None and (old is None or old[1] != route):
            return  # a delete for a route the fact is no longer on
        if old is not None and old[0] == "churn" and fact is not None and fact != old:
            return  # one churn event id, other content: a repeat (past stage one's memory of ids) changes nothing
        if old is not None and old[0] == "seen" and fact is not None and fact[0] == "contact":
            return  # past the resolution horizon: only what retention needs is kept
        if old is None and fact is not None and self._too_old(fact):
            return
        if old == fact:
            if fact is not None:  # sent again (stage one re-asserts after a crash): re-assert what follows from it
                self._reassert(fact_id, fact)
            return
        kept = fact if fact is not None else old
        assert kept is not None  # old == fact returned above
        customer_id = kept[1]
        cust = self.customers.get(customer_id)
        if cust is None:
            cust = self.customers[customer_id] = Customer()
        touched: list[int] = []
        if old is not None:
            self._remove(cust, fact_id, old, touched)
        if fact is None:
            del self.facts[fact_id]
        else:
            self.facts[fact_id] = fact
            self._add(cust, fact_id, fact, touched)
            t = _fact_time(fact)
            if old is None or old[0] != fact[0] or _fact_time(old) != t:  # else its entry stands
                heapq.heappush(self._by_time[fact[0]], (t, fact_id))
        self.dirty_facts.add(fact_id)
        # retention depends on which (queue, channel, day) and when, not on resolution times
        retention = old is None or fact is None or old[0] != "contact" or old[3:6] != fact[3:6]
        self._recompute(customer_id, cust, touched, retention)
        if cust.empty():
            del self.customers[customer_id]

    def _reassert(self, fact_id: str, fact: tuple) -> None:
        cust = self.customers.get(fact[1])
        if cust is None or not self._emit:
            return
        if fact[0] == "contact":
            out = cust.contrib.get(self._cid(fact_id))
            if out is not None:
                self.deltas.append((f"rs|{self._cid(fact_id)}", out[1], out))
        for g, out in cust.ret_contrib.items():
            self.deltas.append((self._ret_id(fact[1], g), g[0], out))

    def _too_old(self, f: tuple) -> bool:
        if f[0] == "churn":
            return f[2] + self._max_horizon_ms() + LONGEST_DAY_MS <= self._ret_floor
        return _fact_time(f) + LONGEST_DAY_MS <= self._ret_floor  # created

    def _max_horizon_ms(self) -> int:
        return max(self.settings.retention_horizons_days, default=0) * DAY_MS

    @staticmethod
    def _cid(fact_id: str) -> str:
        return fact_id[2:]  # j|<contact id>

    @staticmethod
    def _ret_id(customer: str, g: Group) -> str:
        return f"rt|{customer}|{g[0]}|{g[1]}|{g[2]}"

    def _group(self, queue: str, channel: str, created: int) -> Group:
        tz = self._zones.get(queue)
        if tz is None:
            tz = self._zones[queue] = self.settings.queue(queue).time_zone if queue != NO_QUEUE \
                else self.settings.default_queue.time_zone
        start, end = local_day_bounds(created, tz)
        return (queue, channel, start, end)

    def _add(self, cust: Customer, fid: str, f: tuple, touched: list[int]) -> None:
        if f[0] == "contact":
            cid = self._cid(fid)
            cust.contacts[cid] = f
            bisect.insort(cust.order, (f[3], cid))
            touched.append(f[3])
            cust.groups[cid] = (self._group(f[5], f[4], f[3]), f[3])
        elif f[0] == "seen":
            cid = self._cid(fid)
            cust.seen[cid] = f
            cust.groups[cid] = (self._group(f[2], f[3], f[4]), f[4])
        else:
            cust.churns[fid] = f[2]

    def _remove(self, cust: Customer, fid: str, f: tuple, touched: list[int]) -> None:
        if f[0] == "contact":
            cid = self._cid(fid)
            del cust.contacts[cid]
            cust.order.remove((f[3], cid))
            touched.append(f[3])
            cust.groups.pop(cid, None)
        elif f[0] == "seen":
            cust.seen.pop(self._cid(fid), None)
            cust.groups.pop(self._cid(fid), None)
        else:
            cust.churns.pop(fid, None)

    # -- derived facts --------------------------------------------------------------------------
    def _recompute(self, customer_id: str, cust: Customer, touched: list[int], retention: bool = True) -> None:
        """Re-derive the flags of the customer's contacts near the changed ones (within W)."""
        w = self.settings.recontact_window_ms
        if touched:
            lo, hi = min(touched) - w, max(touched) + w
            order = cust.order
            i = bisect.bisect_left(order, (lo, ""))
            affected = set()
            while i < len(order) and order[i][0] <= hi:
                affected.add(order[i][1])
                i += 1
            affected |= {cid for cid in cust.contrib if cid not in cust.contacts}
            for cid in affected:
                self._set_contrib(customer_id, cust, cid, self._resolution_of(cust, cid) if cid in cust.contacts else None)
        if retention:
            self._recompute_retention(customer_id, cust)

    def _resolution_of(self, cust: Customer, cid: str) -> tuple:
        w = self.settings.recontact_window_ms
        f = cust.contacts[cid]
        issue, created, resolved_ms, reopened_ms = f[2], f[3], f[6], f[7]
        order = cust.order
        i = bisect.bisect_left(order, (created, cid))
        repeat = False
        j = i - 1
        while j >= 0 and created - order[j][0] < w:
            if _matches(cust.contacts[order[j][1]][2], issue):
                repeat = True
                break
            j -= 1
        followed = False
        j = i + 1
        while j < len(order) and order[j][0] - created < w:
            if _matches(cust.contacts[order[j][1]][2], issue):
                followed = True
                break
            j += 1
        resolved = resolved_ms is not None and resolved_ms - created < w
        reopened = resolved and reopened_ms is not None and reopened_ms - created < w
        first = not repeat
        fcr = first and resolved and not reopened and not followed
        return ("res", *cust.groups[cid][0], 1, int(repeat), int(first), int(fcr), int(resolved), int(reopened))

    def _set_contrib(self, customer: str, cust: Customer, cid: str, new: tuple | None) -> None:
        old = cust.contrib.get(cid)
        if old == new:
            return
        # A day that ended at or before the floor is final for good: its counts may no longer move,
        # in either direction (stage two has dropped them too).
        if (old is not None and old[4] <= self._res_floor) or (new is not None and new[4] <= self._res_floor):
            return
        if new is None:
            del cust.contrib[cid]
        else:
            cust.contrib[cid] = new
            if old is None or old[4] != new[4]:
                self._by_end["res"].add(new[4], customer)
        if self._emit:
            if old is not None and new is not None and old[1] != new[1]:
                self.deltas.append((f"rs|{cid}", old[1], None))  # another queue now: delete it where it was
            kept = new if new is not None else old
            assert kept is not None  # old == new returned above
            self.deltas.append((f"rs|{cid}", kept[1], new))

    def _recompute_retention(self, customer: str, cust: Customer) -> None:
        first: dict[Group, int] = {}
        for g, created in cust.groups.values():
            t0 = first.get(g)
            if t0 is None or created < t0:
                first[g] = created
        floor = self._ret_floor
        new: dict[Group, tuple] = {}
        if cust.churns:
            churns = sorted(cust.churns.values())
            horizons = self._horizons_ms
            for g, t0 in first.items():
                if g[3] <= floor:
                    continue
                i = bisect.bisect_left(churns, t0)
                nxt = churns[i] if i < len(churns) else None
                new[g] = ("ret", *g, *(int(nxt is not None and nxt - t0 < h) for h in horizons))
        else:  # no churn: within no horizon
            no_churn = self._no_churn
            for g in first:
                if g[3] > floor:
                    new[g] = ("ret", *g, *no_churn)
        # (new == ret_contrib implies ret_contrib holds nothing at or below the floor either)
        if new == cust.ret_contrib or new == {g: c for g, c in cust.ret_contrib.items() if g[3] > floor}:
            return
        for g in set(new) | set(cust.ret_contrib):
            if g[3] <= self._ret_floor:
                continue
            old_c, new_c = cust.ret_contrib.get(g), new.get(g)
            if old_c == new_c:
                continue
            if new_c is None:
                del cust.ret_contrib[g]
            else:
                cust.ret_contrib[g] = new_c
                if old_c is None:
                    self._by_end["ret"].add(g[3], customer)
            if self._emit:
                self.deltas.append((self._ret_id(customer, g), g[0], new_c))

    def take_deltas(self) -> list[Delta]:
        """Facts out since the last call, the last change per (fact id, route) only, in first-change order."""
        last: dict[tuple[str, str], tuple | None] = {}
        for fid, route, fact in self.deltas:
            last[(fid, route)] = fact
        self.deltas = []
        return [(fid, route, fact) for (fid, route), fact in last.items()]

    # -- housekeeping --------------------------------------------------------------------------
    def expire(self) -> int:
        """Bounded state: a contact becomes `seen` once no resolution day it touches can change (its
        day and the days of contacts within W of it ended W + retention ago); retention state goes
        after the longest horizon. Returns facts slimmed or dropped."""
        if self.stream_ms <= 0:
            return 0
        w, ret = self.settings.recontact_window_ms, self.settings.retention_ms
        self._res_floor = max(self._res_floor, self.stream_ms - w - ret)
        self._ret_floor = max(self._ret_floor, self.stream_ms - self._max_horizon_ms() - ret)
        contact_horizon = self._res_floor - w - LONGEST_DAY_MS  # created before: every day it touches is final
        changed = 0
        ret_floor, res_floor = self._ret_floor, self._res_floor
        seen_before = ret_floor - LONGEST_DAY_MS            # a seen fact created before this goes
        churn_before = seen_before - self._max_horizon_ms()  # a churn before this goes
        customers, facts = self.customers, self.facts
        slim = _pop_due(self._by_time, "contact", contact_horizon, facts)
        gone = _pop_due(self._by_time, "seen", seen_before + 1, facts)    # created + LONGEST_DAY_MS <= ret_floor
        gone += _pop_due(self._by_time, "churn", churn_before + 1, facts)  # ts + longest horizon + ... <= ret_floor
        for fid, f in slim:
            cust = customers[f[1]]
            cid = self._cid(fid)
            del cust.contacts[cid]
            cust.order.remove((f[3], cid))
            cust.contrib.pop(cid, None)
            seen = ("seen", f[1], f[5], f[4], f[3])
            cust.seen[cid] = seen  # same group and creation time: cust.groups[cid] stays
            facts[fid] = seen
            heapq.heappush(self._by_time["seen"], (f[3], fid))
            self.dirty_facts.add(fid)
        for fid, f in gone:
            cust = customers[f[1]]
            if f[0] == "seen":
                cust.seen.pop(self._cid(fid), None)
                cust.groups.pop(self._cid(fid), None)
            else:
                cust.churns.pop(fid, None)
            del facts[fid]
            self.dirty_facts.add(fid)
        changed = len(slim) + len(gone)
        # Drop the contributions at or below the floors, visiting only the customers that hold one;
        # a customer can be empty now only then, or when it lost facts above.
        visit = {f[1] for _, f in gone}
        for kind, floor in (("res", res_floor), ("ret", ret_floor)):
            for customer in set(self._by_end[kind].pop_through(floor)):
                owner = customers.get(customer)
                if owner is None:
                    continue
                visit.add(customer)
                if kind == "res":
                    owner.contrib = {cid: c for cid, c in owner.contrib.items() if c[4] > floor}
                else:
                    owner.ret_contrib = {g: c for g, c in owner.ret_contrib.items() if g[3] > floor}
        for customer in visit:
            held = customers.get(customer)
            if held is not None and held.empty():
                del customers[customer]
        return changed

    # -- persistence -----------------------------------------------------------------------------
    def take_dirty(self) -> dict[str, list | None]:
        facts = {fid: (list(self.facts[fid]) if fid in self.facts else None) for fid in self.dirty_facts}
        self.dirty_facts.clear()
        return facts

    def restore(self, facts) -> None:
        """Rebuild from stored facts ((fact id, fact) pairs), emitting nothing: downstream has it all."""
        self._emit = False
        try:
            for fid, fact in facts:
                self.apply(fid, fact_from_json(fact))
        finally:
            self._emit = True
        self.dirty_facts.clear()
