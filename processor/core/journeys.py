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
  for a contact of an unidentified customer (settings.unidentified_customers), which matches no other:
  ("res", queue, channel, day_start, day_end, 0, 0, 0, 0, 0, 0, 1)                                id rs|<contact id>
  ("ret", queue, channel, day_start, day_end, 0 for each horizon..., 1)                           id ru|<contact id>

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
  if a customer.churned is at or after their first such contact and less than h days after it;
- a contact whose customer is unidentified (a placeholder id, settings.unidentified_customers)
  matches no contact and holds no retention: it only counts as `unidentified_contacts`.

Cost (docs/journeys-cost.md): every index of a customer is a SortedKeys (O(log n) search), so a
change re-derives only the contacts whose flags it can change: the nearest matching contacts on
either side for a contact with an issue; for one without an issue (it matches every contact), the
contacts up to the nearest contact without an issue on either side, within W. A change that keeps a
contact's creation and issue re-derives that contact alone; a churn, the groups whose first contact
lies in (previous churn, churn] within the longest horizon.
"""
from __future__ import annotations

import heapq

from .calendar import local_day_bounds
from .profile import NO_QUEUE
from .publish import SourceClock, take_keys
from .segments import fact_from_json
from .settings import DAY_MS, EngineSettings, normalize_customer_id
from .sortedkeys import SortedKeys

JOURNEY_KINDS = frozenset({"contact", "churn", "seen"})
LONGEST_DAY_MS = 25 * 3_600_000  # a local day is 23, 24 or 25 hours long
NEVER = -(1 << 62)  # a horizon below every event time

Group = tuple[str, str, int, int]  # (queue, channel, local day start, local day end)
Delta = tuple[str, str, tuple | None]


class Customer:
    """One identified customer's contacts, indexed for the matching rule, and what was emitted for them."""

    __slots__ = ("contacts", "order", "by_issue", "no_issue", "seen", "groups", "members", "starts",
                 "churns", "churn_order", "contrib", "ret_contrib")

    def __init__(self) -> None:
        self.contacts: dict[str, tuple] = {}         # contact id -> contact fact
        self.order = SortedKeys()                    # (created, contact id) of every contact
        self.by_issue: dict[str, SortedKeys] = {}    # issue -> (created, contact id) of its contacts
        self.no_issue = SortedKeys()                 # (created, contact id) of the contacts without an issue
        self.seen: dict[str, tuple] = {}             # contact id -> seen fact
        self.groups: dict[str, tuple[Group, int]] = {}  # contact id -> (group, created) of its contact or seen fact
        self.members: dict[Group, SortedKeys] = {}   # group -> (created, contact id) of its contacts and seen facts
        self.starts = SortedKeys()                   # (first creation, group) of every group with members
        self.churns: dict[str, int] = {}             # fact id -> ts
        self.churn_order = SortedKeys()              # (ts, fact id)
        self.contrib: dict[str, tuple] = {}          # contact id -> "res" fact last emitted
        self.ret_contrib: dict[Group, tuple] = {}    # group -> "ret" fact last emitted

    def empty(self) -> bool:
        return not (self.contacts or self.seen or self.churns or self.contrib or self.ret_contrib)


def _fact_time(f: tuple) -> int:
    """What a journey fact's horizons count from: a contact's or seen contact's creation, a churn's time."""
    kind = f[0]
    return f[3] if kind == "contact" else f[4] if kind == "seen" else f[2]


def _earlier(a: tuple | None, b: tuple | None) -> tuple | None:
    return b if a is None else a if b is None or a > b else b  # the later of two keys before: the nearest


def _later(a: tuple | None, b: tuple | None) -> tuple | None:
    return b if a is None else a if b is None or a < b else b  # the earlier of two keys after: the nearest


class JourneyBook(SourceClock):
    """Journey state of one partition (any number of customers)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.init_clock()
        self.facts: dict[str, tuple] = {}
        self.customers: dict[str, Customer] = {}
        self.deltas: list[Delta] = []      # facts out since the last take_deltas(), routed by queue
        self.dirty_facts: set[str] = set()
        self._w = settings.recontact_window_ms
        self._unidentified = settings.unidentified_customers
        self._res_floor = -1   # days ended at or before this can no longer change: nothing is emitted for them
        self._ret_floor = -1
        self._emit = True      # False while restoring: what was emitted before is downstream already
        self._horizons_ms = tuple(h * DAY_MS for h in settings.retention_horizons_days)
        self._max_horizon = max(self._horizons_ms, default=0)
        self._no_churn = (0,) * len(self._horizons_ms)  # churned within no horizon
        self._zones: dict[str, str] = {}  # queue -> its time zone
        # Contacts of unidentified customers: contact id -> "res" / "ret" fact last emitted
        self._anon_res: dict[str, tuple] = {}
        self._anon_ret: dict[str, tuple] = {}
        # The contributions by the day end at which they go: (day end, customer, contact id or group),
        # and (day end, contact id) for those of unidentified customers. Entries of contributions
        # changed or gone since are skipped when they come up.
        self._by_end: dict[str, list[tuple]] = {"res": [], "ret": [], "anon res": [], "anon ret": []}
        # The facts by the time expire() compares with its horizons, oldest first: contact facts by
        # creation, seen facts by creation, churns by time. Entries of facts changed or gone since are
        # skipped when they come up. expire() then visits what it drops, not every fact it holds.
        self._by_time: dict[str, list[tuple[int, str]]] = {"contact": [], "seen": [], "churn": []}
        # One housekeeping pass may run in slices (expire(limit=...)), events between them. A pass
        # fixes its floors and horizons when it starts, and drops what was due then: a fact due but
        # not dropped yet is dropped when a change comes for it, and a fact stored during the pass
        # waits for the next one (_late), as it would if the pass had run whole at its start.
        self._pass_open = False
        self._late: set[str] = set()
        self._deferred: list[tuple[str, tuple[int, str]]] = []
        self._horizon: dict[str, int] = {"contact": NEVER, "seen": NEVER, "churn": NEVER}

    def unidentified(self, customer: str | None) -> bool:
        if customer is None:
            return True
        key = normalize_customer_id(customer)
        return not key or key in self._unidentified

    # -- facts in -------------------------------------------------------------------------------
    def apply(self, fact_id: str, fact: tuple | None, route: str | None = None) -> None:
        old = self.facts.get(fact_id)
        if fact is None and route is not None and (old is None or old[1] != route):
            return  # a delete for a route the fact is no longer on
        while old is not None and self._pass_open and self._due(fact_id, old):
            self._expire_fact(fact_id, old)  # what the pass under way would have done before this came
            old = self.facts.get(fact_id)
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
        if old is not None and fact is not None and old[1] != fact[1]:
            self._change(fact_id, old, None)  # another customer: gone from the first, new to the other
            old = None
        self._change(fact_id, old, fact)

    def _change(self, fid: str, old: tuple | None, fact: tuple | None) -> None:
        kept = fact if fact is not None else old
        assert kept is not None
        customer_id = kept[1]
        if fact is None:
            del self.facts[fid]
        else:
            self.facts[fid] = fact
            t = _fact_time(fact)
            if old is None or old[0] != fact[0] or _fact_time(old) != t:  # else its entry stands
                heapq.heappush(self._by_time[fact[0]], (t, fid))
                if self._pass_open:
                    self._late.add(fid)
        self.dirty_facts.add(fid)
        if kept[0] != "churn" and self.unidentified(customer_id):
            self._change_anon(fid, fact)
            return
        cust = self.customers.get(customer_id)
        if cust is None:
            cust = self.customers[customer_id] = Customer()
        recompute: set[str] = set()
        groups: set[Group] = set()
        if old is not None and fact is not None and old[0] == "contact" and fact[0] == "contact" \
                and old[2:4] == fact[2:4]:
            cid = fid[2:]
            cust.contacts[cid] = fact  # same place in the order: no other contact's flags can change
            recompute.add(cid)
            if old[4:6] != fact[4:6]:
                self._leave(cust, cid, groups)
                self._join(cust, cid, self._group(fact[5], fact[4], fact[3]), fact[3], groups)
        else:
            if old is not None:
                self._remove(cust, fid, old, recompute, groups)
            if fact is not None:
                self._add(cust, fid, fact, recompute, groups)
        for c in recompute:
            self._set_contrib(customer_id, cust, c, self._resolution_of(cust, c) if c in cust.contacts else None)
        for g in groups:
            self._set_ret(customer_id, cust, g, self._retention_of(cust, g))
        if cust.empty():
            del self.customers[customer_id]

    def _add(self, cust: Customer, fid: str, f: tuple, recompute: set[str], groups: set[Group]) -> None:
        kind = f[0]
        if kind == "churn":
            s = (f[2], fid)
            cust.churns[fid] = f[2]
            cust.churn_order.add(s)
            self._churn_groups(cust, s, groups)
        elif kind == "seen":
            cid = fid[2:]
            cust.seen[cid] = f
            self._join(cust, cid, self._group(f[2], f[3], f[4]), f[4], groups)
        else:
            cid = fid[2:]
            self._index(cust, cid, f, recompute)
            self._join(cust, cid, self._group(f[5], f[4], f[3]), f[3], groups)
            recompute.add(cid)

    def _remove(self, cust: Customer, fid: str, f: tuple, recompute: set[str], groups: set[Group]) -> None:
        kind = f[0]
        if kind == "churn":
            s = (f[2], fid)
            self._churn_groups(cust, s, groups)
            cust.churns.pop(fid, None)
            cust.churn_order.discard(s)
        elif kind == "seen":
            cid = fid[2:]
            cust.seen.pop(cid, None)
            self._leave(cust, cid, groups)
        else:
            cid = fid[2:]
            self._unindex(cust, cid, f, recompute)
            self._leave(cust, cid, groups)
            recompute.add(cid)

    # -- the matching indexes --------------------------------------------------------------------
    def _index(self, cust: Customer, cid: str, f: tuple, recompute: set[str]) -> None:
        cust.contacts[cid] = f
        k = (f[3], cid)
        cust.order.add(k)
        issue = f[2]
        if issue is None:
            cust.no_issue.add(k)
        else:
            idx = cust.by_issue.get(issue)
            if idx is None:
                idx = cust.by_issue[issue] = SortedKeys()
            idx.add(k)
        self._neighbours(cust, k, issue, recompute)

    def _unindex(self, cust: Customer, cid: str, f: tuple, recompute: set[str]) -> None:
        k = (f[3], cid)
        issue = f[2]
        self._neighbours(cust, k, issue, recompute)
        del cust.contacts[cid]
        cust.order.discard(k)
        if issue is None:
            cust.no_issue.discard(k)
        else:
            idx = cust.by_issue[issue]
            idx.discard(k)
            if not len(idx):
                del cust.by_issue[issue]

    def _neighbours(self, cust: Customer, k: tuple, issue: str | None, out: set[str]) -> None:
        """The contacts whose repeat or followed flag may depend on the contact at key k (held).

        Repeat of x depends on its nearest matching contact before it, followed on the nearest after.
        A contact with an issue I is the nearest matching one only of the nearest I or no-issue
        contact on either side (a farther one has a nearer match). One without an issue matches every
        contact: it can be the nearest match of each contact up to the nearest no-issue contact on
        either side (that one included); only those within W count."""
        w = self._w
        created = k[0]
        if issue is not None:
            for idx in (cust.by_issue.get(issue), cust.no_issue):
                if idx is None:
                    continue
                a = idx.after(k)
                if a is not None and a[0] - created < w:
                    out.add(a[1])
                b = idx.before(k)
                if b is not None and created - b[0] < w:
                    out.add(b[1])
            return
        hi: tuple = (created + w, "")  # below: created less than W after
        nxt = cust.no_issue.after(k)
        if nxt is not None and nxt < hi:
            out.add(nxt[1])
            hi = nxt
        for x in cust.order.between(k, hi):
            out.add(x[1])
        lo: tuple = (created - w + 1, "")  # above: created less than W before
        prv = cust.no_issue.before(k)
        if prv is not None and prv > lo:
            out.add(prv[1])
            lo = prv
        for x in cust.order.between(lo, k):
            out.add(x[1])

    def _resolution_of(self, cust: Customer, cid: str) -> tuple:
        w = self._w
        f = cust.contacts[cid]
        issue, created, resolved_ms, reopened_ms = f[2], f[3], f[6], f[7]
        k = (created, cid)
        if issue is None:
            prv, nxt = cust.order.before(k), cust.order.after(k)
        else:
            idx = cust.by_issue[issue]
            prv = _earlier(idx.before(k), cust.no_issue.before(k))
            nxt = _later(idx.after(k), cust.no_issue.after(k))
        repeat = prv is not None and created - prv[0] < w
        followed = nxt is not None and nxt[0] - created < w
        resolved = resolved_ms is not None and resolved_ms - created < w
        reopened = resolved and reopened_ms is not None and reopened_ms - created < w
        first = not repeat
        fcr = first and resolved and not reopened and not followed
        return ("res", *cust.groups[cid][0], 1, int(repeat), int(first), int(fcr), int(resolved), int(reopened))

    # -- retention groups ------------------------------------------------------------------------
    def _join(self, cust: Customer, cid: str, g: Group, created: int, groups: set[Group]) -> None:
        cust.groups[cid] = (g, created)
        m = cust.members.get(g)
        if m is None:
            m = cust.members[g] = SortedKeys()
        was = m.first()
        m.add((created, cid))
        now = m.first()
        if was != now:
            if was is not None:
                cust.starts.discard((was[0], g))
            assert now is not None
            cust.starts.add((now[0], g))
        groups.add(g)

    def _leave(self, cust: Customer, cid: str, groups: set[Group]) -> None:
        held = cust.groups.pop(cid, None)
        if held is None:
            return
        g, created = held
        m = cust.members[g]
        was = m.first()
        m.discard((created, cid))
        now = m.first()
        if was != now:
            assert was is not None
            cust.starts.discard((was[0], g))
            if now is not None:
                cust.starts.add((now[0], g))
        if not len(m):
            del cust.members[g]
        groups.add(g)

    def _churn_groups(self, cust: Customer, s: tuple, groups: set[Group]) -> None:
        """The groups whose flags a churn at key s (held) may decide: first contact in (previous churn, s]
        and within the longest horizon before s (a farther one churned within no horizon either way)."""
        low = s[0] - self._max_horizon
        prv = cust.churn_order.before(s)
        if prv is not None and prv[0] > low:
            low = prv[0]
        for _, g in cust.starts.between((low + 1, ()), (s[0] + 1, ())):
            groups.add(g)

    def _retention_of(self, cust: Customer, g: Group) -> tuple | None:
        m = cust.members.get(g)
        first = m.first() if m is not None else None
        if first is None:
            return None
        t0 = first[0]
        nxt = cust.churn_order.at_or_after((t0, ""))
        if nxt is None:
            return ("ret", *g, *self._no_churn)
        return ("ret", *g, *(int(nxt[0] - t0 < h) for h in self._horizons_ms))

    # -- contacts of unidentified customers -------------------------------------------------------
    def _change_anon(self, fid: str, fact: tuple | None) -> None:
        cid = fid[2:]
        res: tuple | None = None
        ret: tuple | None = None
        if fact is not None:
            if fact[0] == "contact":
                g = self._group(fact[5], fact[4], fact[3])
                res = ("res", *g, 0, 0, 0, 0, 0, 0, 1)
            else:  # seen
                g = self._group(fact[2], fact[3], fact[4])
            ret = ("ret", *g, *((0,) * len(self._horizons_ms)), 1)
            if fact[0] == "seen":
                res = self._anon_res.get(cid)  # past the resolution horizon: left as it was
        self._set_anon(cid, res, ret)

    def _set_anon(self, cid: str, res: tuple | None, ret: tuple | None) -> None:
        for kind, held, new, fid, floor in (("res", self._anon_res, res, f"rs|{cid}", self._res_floor),
                                            ("ret", self._anon_ret, ret, f"ru|{cid}", self._ret_floor)):
            old = held.get(cid)
            if old == new or (old is not None and old[4] <= floor) or (new is not None and new[4] <= floor):
                continue
            if new is None:
                del held[cid]
            else:
                held[cid] = new
                if old is None or old[4] != new[4]:
                    heapq.heappush(self._by_end["anon " + kind], (new[4], cid))
            if self._emit:
                if old is not None and new is not None and old[1] != new[1]:
                    self.deltas.append((fid, old[1], None))
                kept = new if new is not None else old
                assert kept is not None
                self.deltas.append((fid, kept[1], new))

    # -- derived facts --------------------------------------------------------------------------
    def _reassert(self, fact_id: str, fact: tuple) -> None:
        """Re-emit what follows from a fact sent again (a send lost in a crash is repaired)."""
        if not self._emit:
            return
        customer = fact[1]
        if fact[0] != "churn" and self.unidentified(customer):
            cid = fact_id[2:]
            for fid, held, floor in ((f"rs|{cid}", self._anon_res, self._res_floor),
                                     (f"ru|{cid}", self._anon_ret, self._ret_floor)):
                out = held.get(cid)
                if out is not None and out[4] > floor:
                    self.deltas.append((fid, out[1], out))
            return
        cust = self.customers.get(customer)
        if cust is None:
            return
        cids: set[str] = set()
        groups: set[Group] = set()
        if fact[0] == "churn":
            self._churn_groups(cust, (fact[2], fact_id), groups)
        else:
            cid = fact_id[2:]
            member = cust.groups.get(cid)
            if member is not None:
                groups.add(member[0])
            if fact[0] == "contact" and cid in cust.contacts:
                cids.add(cid)
                self._neighbours(cust, (fact[3], cid), fact[2], cids)
        for cid in cids:
            out = cust.contrib.get(cid)
            if out is not None and out[4] > self._res_floor:
                self.deltas.append((f"rs|{cid}", out[1], out))
        for g in groups:
            out = cust.ret_contrib.get(g)
            if out is not None and g[3] > self._ret_floor:
                self.deltas.append((self._ret_id(customer, g), g[0], out))

    def _too_old(self, f: tuple) -> bool:
        if f[0] == "churn":
            return f[2] + self._max_horizon + LONGEST_DAY_MS <= self._ret_floor
        return _fact_time(f) + LONGEST_DAY_MS <= self._ret_floor  # created

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
                heapq.heappush(self._by_end["res"], (new[4], customer, cid))
        if self._emit:
            if old is not None and new is not None and old[1] != new[1]:
                self.deltas.append((f"rs|{cid}", old[1], None))  # another queue now: delete it where it was
            kept = new if new is not None else old
            assert kept is not None  # old == new returned above
            self.deltas.append((f"rs|{cid}", kept[1], new))

    def _set_ret(self, customer: str, cust: Customer, g: Group, new: tuple | None) -> None:
        if g[3] <= self._ret_floor:
            return
        old = cust.ret_contrib.get(g)
        if old == new:
            return
        if new is None:
            del cust.ret_contrib[g]
        else:
            cust.ret_contrib[g] = new
            if old is None:
                heapq.heappush(self._by_end["ret"], (g[3], customer, g))
        if self._emit:
            self.deltas.append((self._ret_id(customer, g), g[0], new))

    def take_deltas(self) -> list[Delta]:
        """Facts out since the last call, the last change per (fact id, route) only, in first-change order."""
        last: dict[tuple[str, str], tuple | None] = {}
        for fid, route, fact in self.deltas:
            last[(fid, route)] = fact
        self.deltas = []
        return [(fid, route, fact) for (fid, route), fact in last.items()]

    # -- housekeeping --------------------------------------------------------------------------
    def expire(self, limit: int | None = None) -> int:
        """Bounded state: a contact becomes `seen` once no resolution day it touches can change (its
        day and the days of contacts within W of it ended W + retention ago); retention state goes
        after the longest horizon. Each item visited is one fact or contribution due (or an index
        entry of one changed since). Returns how many were visited: at most `limit`; equal to it
        means the pass is not over (call again), and the floors stay where the pass fixed them."""
        if self.stream_ms <= 0:
            return 0
        if not self._pass_open:
            w, ret = self._w, self.settings.retention_ms
            self._res_floor = max(self._res_floor, self.stream_ms - w - ret)
            self._ret_floor = max(self._ret_floor, self.stream_ms - self._max_horizon - ret)
            seen_before = self._ret_floor - LONGEST_DAY_MS  # a seen fact created at or before this goes
            self._horizon = {
                "contact": self._res_floor - w - LONGEST_DAY_MS - 1,  # created at or before: every day it touches is final
                "seen": seen_before,
                "churn": seen_before - self._max_horizon,            # ts + longest horizon + ... <= ret_floor
            }
            self._pass_open = True
        budget = limit if limit is not None else -1
        done = 0
        facts = self.facts
        for kind in ("contact", "seen", "churn"):
            heap, before = self._by_time[kind], self._horizon[kind]
            while heap and heap[0][0] <= before:
                if done == budget:
                    return done
                entry = heapq.heappop(heap)
                done += 1
                fid = entry[1]
                f = facts.get(fid)
                if f is None or f[0] != kind or _fact_time(f) != entry[0]:
                    continue  # changed or gone since
                if fid in self._late:
                    self._deferred.append((kind, entry))  # stored during this pass: the next one's
                    continue
                self._expire_fact(fid, f)
        for kind, floor in (("res", self._res_floor), ("ret", self._ret_floor)):
            heap2 = self._by_end[kind]
            while heap2 and heap2[0][0] <= floor:
                if done == budget:
                    return done
                end, customer, key = heapq.heappop(heap2)
                done += 1
                self._drop_contrib(kind, end, customer, key)
            heap3 = self._by_end["anon " + kind]
            held = self._anon_res if kind == "res" else self._anon_ret
            while heap3 and heap3[0][0] <= floor:
                if done == budget:
                    return done
                end, cid = heapq.heappop(heap3)
                done += 1
                c = held.get(cid)
                if c is not None and c[4] == end:
                    del held[cid]
        for kind, entry in self._deferred:
            heapq.heappush(self._by_time[kind], entry)
        self._deferred = []
        self._late.clear()
        self._pass_open = False
        return done

    def _due(self, fid: str, f: tuple) -> bool:
        """Due in the pass under way (and not dropped yet)."""
        return _fact_time(f) <= self._horizon[f[0]] and fid not in self._late

    def _expire_fact(self, fid: str, f: tuple) -> None:
        """What a pass does to one due fact: a contact becomes seen, a seen fact or a churn goes."""
        customer = f[1]
        anon = f[0] != "churn" and self.unidentified(customer)
        cust = self.customers.get(customer)
        cid = fid[2:]
        if f[0] == "contact":
            seen = ("seen", customer, f[5], f[4], f[3])
            if anon:
                self._anon_res.pop(cid, None)
            elif cust is not None:
                k = (f[3], cid)
                del cust.contacts[cid]
                cust.order.discard(k)
                if f[2] is None:
                    cust.no_issue.discard(k)
                else:
                    idx = cust.by_issue[f[2]]
                    idx.discard(k)
                    if not len(idx):
                        del cust.by_issue[f[2]]
                cust.contrib.pop(cid, None)
                cust.seen[cid] = seen  # same group and creation time: its group membership stays
            self.facts[fid] = seen
            heapq.heappush(self._by_time["seen"], (f[3], fid))
        else:
            if anon:
                self._anon_ret.pop(cid, None)
                self._anon_res.pop(cid, None)
            elif cust is not None:
                if f[0] == "seen":
                    cust.seen.pop(cid, None)
                    self._leave(cust, cid, set())
                else:
                    cust.churns.pop(fid, None)
                    cust.churn_order.discard((f[2], fid))
            del self.facts[fid]
        self.dirty_facts.add(fid)
        if cust is not None and cust.empty():
            del self.customers[customer]

    def _drop_contrib(self, kind: str, end: int, customer: str, key) -> None:
        owner = self.customers.get(customer)
        if owner is None:
            return
        table = owner.contrib if kind == "res" else owner.ret_contrib
        c = table.get(key)
        if c is not None and c[4] == end:
            del table[key]
            if owner.empty():
                del self.customers[customer]

    # -- persistence -----------------------------------------------------------------------------
    def take_dirty(self, limit: int | None = None) -> dict[str, list | None]:
        """Facts changed since the last call (None = delete); with `limit`, at most that many."""
        return {fid: (list(self.facts[fid]) if fid in self.facts else None)
                for fid in take_keys(self.dirty_facts, limit)}

    def restore(self, facts) -> None:
        """Rebuild from stored facts ((fact id, fact) pairs), emitting nothing: downstream has it all."""
        self._emit = False
        try:
            for fid, fact in facts:
                self.apply(fid, fact_from_json(fact))
        finally:
            self._emit = True
        self.dirty_facts.clear()
