"""Service: ringing, the answer, talk with an optional hold, the chat reply, transfer or wrap-up and
after-contact work, and the leg records."""
from __future__ import annotations

from .state import Agent, Contact, LegRecord


class Service:
    """Part of `Simulation` (see simulation.py); reads and changes its state."""

    def _assign(self, t: int, c: Contact, a: Agent) -> None:
        c.waiting = False
        c.agent = a
        a.state = "reserved"  # not published: it shows busy once the contact is answered
        self._at(t + c.stream.m.answer_delay.sample_ms(self.rng), self._answer, c, a)

    def _answer(self, t: int, c: Contact, a: Agent) -> None:
        s = c.stream
        m = s.m
        rng = self.rng
        self._end_segment(t, c, "answered")
        self._emit(t, "contact.answered", contact_id=c.cid, queue_id=m.queue_id, agent_id=a.agent_id)
        self._agent_state(t, a, "busy")
        c.answered_ms = t
        c.hold_ms = 0
        talk = m.handle_time.sample_ms(rng)
        end = t + talk
        c.talk_end_ms = end
        if m.hold_probability and rng.random() < m.hold_probability:
            length = min(m.hold_duration.sample_ms(rng), talk // 2)
            if length >= 1000:
                hold_start = t + 1 + rng.randrange(talk - length - 1)
                c.hold_ms = length
                self._at(hold_start, self._emit_for, "contact.hold_started", c.cid, a.agent_id)
                self._at(hold_start + length, self._emit_for, "contact.hold_ended", c.cid, a.agent_id)
        if c.channel != "voice" and not m.is_async:  # chat: the agent's first reply
            self._at(t + min(m.reply_delay.sample_ms(rng), talk // 2), self._agent_reply, c.cid, a.agent_id)
        c.transfer_to = None
        if s.transfer_targets and m.transfer_probability and rng.random() < m.transfer_probability:
            c.transfer_to = s.transfer_targets[rng.randrange(len(s.transfer_targets))]
        self._at(end, self._talk_end, c, a)

    def _agent_reply(self, t: int, cid: str, agent_id: str) -> None:
        if self.feed.omit_defaults:  # `automated` is optional, absent means false
            self._emit(t, "message.agent_replied", contact_id=cid, agent_id=agent_id)
        else:
            self._emit(t, "message.agent_replied", contact_id=cid, agent_id=agent_id, automated=False)

    def _emit_for(self, t: int, type_: str, cid: str, agent_id: str) -> None:
        self._emit(t, type_, contact_id=cid, agent_id=agent_id)

    def _talk_end(self, t: int, c: Contact, a: Agent) -> None:
        s = c.stream
        m = s.m
        talk = t - c.answered_ms - c.hold_ms
        if c.transfer_to is not None:
            self._emit(t, "contact.transferred", contact_id=c.cid, agent_id=a.agent_id,
                       to_queue_id=c.transfer_to.m.queue_id)
            self.legs.append(LegRecord(m.queue_id, c.channel, t, talk, c.hold_ms, 0))
            self._release(t, a)
            self._at(t + 500, self._enqueue, c, c.transfer_to)
            return
        if m.is_async:
            self._agent_reply(t, c.cid, a.agent_id)
        self._emit(t, "contact.wrapup_started", contact_id=c.cid, agent_id=a.agent_id)
        acw = 0
        if m.acw is not None:
            acw = m.acw.sample_ms(self.rng)
            if acw:
                self._agent_state(t, a, "acw")
        self._at(t + acw, self._wrap_end, c, a, talk, acw)

    def _wrap_end(self, t: int, c: Contact, a: Agent, talk: int, acw: int) -> None:
        s = c.stream
        m = s.m
        rng = self.rng
        self._emit(t, "contact.wrapup_ended", contact_id=c.cid, agent_id=a.agent_id)
        self.legs.append(LegRecord(m.queue_id, c.channel, t, talk, c.hold_ms, acw))
        self._release(t, a)
        if m.qa_probability and rng.random() < m.qa_probability:
            at = self._later(t, m.qa_delay)
            if at is not None:
                score = min(100, max(0, round(rng.gauss(82, 10))))
                self._at(at, self._emit_qa, c.cid, a.agent_id, score)
        if m.is_async:
            if c.round < m.max_rounds and m.customer_reply_probability and rng.random() < m.customer_reply_probability:
                at = self._later(t, m.customer_reply_delay)
                if at is not None:
                    c.round += 1
                    self._at(at, self._customer_writes, c, s, "message.customer_replied")
                return  # still open: the customer will write again
            self._finish(t, c, s)
            return
        self._finish(t, c, s)
