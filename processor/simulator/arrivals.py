"""Arrivals: the piecewise-constant Poisson process per stream, who calls (CustomerModel), and the new
contact with its optional automated acknowledgement."""
from __future__ import annotations

import bisect

from .clock import local_hour
from .model import SLOT_MS
from .state import Contact, Stream


class Arrivals:
    """Part of `Simulation` (see simulation.py); reads and changes its state."""

    def _rate(self, s: Stream, slot_ms: int) -> float:
        """Arrivals per second during the 15-minute UTC slot starting at slot_ms (its local hour's rate)."""
        m = s.m
        return m.arrivals_per_hour * m.daily_curve[local_hour(slot_ms, m.time_zone)] / 3600

    def _next_arrival(self, s: Stream) -> int | None:
        t = s.t_arrival
        end = self.end_ms
        while t < end:
            slot = int(t) // SLOT_MS * SLOT_MS
            slot_end = float(slot + SLOT_MS)
            rate = self._rate(s, slot) / 1000  # per millisecond
            if rate > 0:
                nxt = t + s.rng.expovariate(rate)
                if nxt < slot_end:
                    s.t_arrival = nxt
                    at = round(nxt)
                    return at if at < end else None
            t = slot_end  # memoryless: restart the clock at the slot boundary with the new rate
        s.t_arrival = t
        return None

    def _arrive(self, t: int, s: Stream) -> None:
        nxt = self._next_arrival(s)
        if nxt is not None:
            self._at(nxt, self._arrive, s)
        customer = self._customer()
        issue = s.m.issues[self.rng.randrange(len(s.m.issues))]
        self._new_contact(t, s, customer, issue, None)

    def _customer(self) -> str:
        """The customer of a new contact (see CustomerModel)."""
        cm = self.customers
        if cm.unidentified_share or cm.busy_accounts:
            u = self._cust_rng.random()
            if u < cm.unidentified_share:
                return cm.placeholder
            u -= cm.unidentified_share
            for b in cm.busy_accounts:
                if u < b.share:
                    return b.customer_id
                u -= b.share
        if self._zipf is not None:
            cum = self._zipf
            return f"cu-{bisect.bisect_right(cum, self._cust_rng.random() * cum[-1]) + 1}"
        self._n_customer += 1
        return f"{self.tag}-u{self._n_customer}"

    def _repeat(self, t: int, s: Stream, customer: str, issue: str, first: str) -> None:
        if t < self.end_ms:
            self._new_contact(t, s, customer, issue, first)

    def _new_contact(self, t: int, s: Stream, customer: str, issue: str, repeat_of: str | None) -> None:
        self._n_contact += 1
        c = Contact(f"{self.tag}-c{self._n_contact}", s.m.channel, customer, issue, s)
        self.contacts[c.cid] = {"customer_id": customer, "issue": issue, "queue_id": s.m.queue_id,
                                "channel": c.channel, "created_ms": t, "repeat_of": repeat_of,
                                "resolved": False, "reopened": False}
        if self.feed.missing_issue and self._feed_rng.random() < self.feed.missing_issue:
            self._emit(t, "contact.created", contact_id=c.cid, channel=c.channel, customer_id=customer)
        else:
            self._emit(t, "contact.created", contact_id=c.cid, channel=c.channel, customer_id=customer, issue=issue)
        m = s.m
        if m.auto_reply and self.rng.random() < m.auto_reply:
            self._at(t + 1000 + self.rng.randrange(4000), self._auto_reply, c, s)
        self._enqueue(t, c, s)

    def _auto_reply(self, t: int, c: Contact, s: Stream) -> None:
        self._emit(t, "message.agent_replied", contact_id=c.cid, agent_id=f"{s.m.queue_id}-bot", automated=True)
