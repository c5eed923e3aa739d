"""Queueing: first-come first-served waiting, the longest-idle agent first, and the ways a wait ends
without an answer (abandon, flow-out) with the customer's quick retry."""
from __future__ import annotations

from .state import Agent, Contact, SegmentRecord, Stream


class Queueing:
    """Part of `Simulation` (see simulation.py); reads and changes its state."""

    def _enqueue(self, t: int, c: Contact, s: Stream) -> None:
        c.stream = s
        c.seg += 1
        c.seg_start = t
        self._emit(t, "contact.queued", contact_id=c.cid, queue_id=s.m.queue_id)
        a = self._take_free(s)
        if a is not None:
            self._assign(t, c, a)
            return
        c.waiting = True
        s.waiting.append((c, c.seg))
        m = s.m
        if m.patience_seconds is not None:
            self._at(t + round(self.rng.expovariate(1.0 / m.patience_seconds) * 1000), self._give_up, c, c.seg)
        if m.flow_out_after_seconds is not None:
            self._at(t + round(m.flow_out_after_seconds * 1000), self._flow_out, c, c.seg)

    def _take_free(self, s: Stream) -> Agent | None:
        free = s.free
        while free:
            a, since = free.popleft()
            if a.state == "available" and a.on_shift and a.idle_since == since:
                return a
        return None

    def _next_waiting(self, s: Stream) -> Contact | None:
        w = s.waiting
        while w:
            c, seg = w.popleft()
            if c.waiting and c.seg == seg and c.stream is s:
                return c
        return None

    def _end_segment(self, t: int, c: Contact, outcome: str) -> None:
        s = c.stream
        c.waited_ms += t - c.seg_start
        self.segments.append(SegmentRecord(s.m.queue_id, c.channel, c.seg_start, t, outcome))

    def _give_up(self, t: int, c: Contact, seg: int) -> None:
        if not c.waiting or c.seg != seg:
            return
        c.waiting = False
        s = c.stream
        self._end_segment(t, c, "abandoned")
        self._emit(t, "contact.abandoned", contact_id=c.cid, queue_id=s.m.queue_id)
        self._unserved(t, c, s)

    def _flow_out(self, t: int, c: Contact, seg: int) -> None:
        if not c.waiting or c.seg != seg:
            return
        c.waiting = False
        s = c.stream
        m = s.m
        self._end_segment(t, c, "flowed_out")
        self._emit(t, "contact.flowed_out", contact_id=c.cid, queue_id=m.queue_id, reason=m.flow_out_reason)
        if m.flow_out_to is not None:
            self._at(t + 500, self._enqueue, c, self.streams[(m.flow_out_to, c.channel)])
        else:
            self._unserved(t, c, s)

    def _unserved(self, t: int, c: Contact, s: Stream) -> None:
        """The customer left unserved: maybe tries again soon, on the same issue."""
        m = s.m
        if m.retry_after_abandon and self.rng.random() < m.retry_after_abandon:
            at = self._later(t, m.retry_delay)
            if at is not None:
                self._at(at, self._repeat, c.origin, c.customer, c.issue, self._first_of(c))

    def _first_of(self, c: Contact) -> str:
        info = self.contacts[c.cid]
        return info["repeat_of"] or c.cid
