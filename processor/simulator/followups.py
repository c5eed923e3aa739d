"""After the handling: QA scores, the customer writing again or reopening, resolution, surveys,
repeats and churn, each scheduled only when it falls before the end of the simulation."""
from __future__ import annotations

from .model import SURVEYS
from .state import Contact, Stream


class FollowUps:
    """Part of `Simulation` (see simulation.py); reads and changes its state."""

    def _emit_qa(self, t: int, cid: str, agent_id: str, score: int) -> None:
        self._emit(t, "qa.scored", contact_id=cid, agent_id=agent_id, score=score)

    def _customer_writes(self, t: int, c: Contact, s: Stream, type_: str) -> None:
        if type_ == "contact.reopened":
            self._emit(t, "contact.reopened", contact_id=c.cid)
            self.contacts[c.cid]["reopened"] = True
        self._emit(t, "message.customer_replied", contact_id=c.cid)
        self._at(t + 1000, self._enqueue, c, s)

    def _finish(self, t: int, c: Contact, s: Stream) -> None:
        """The contact's (last) handling is over: resolution, survey, repeat, churn."""
        m = s.m
        rng = self.rng
        resolved = rng.random() < m.resolve_probability
        if resolved:
            c.resolved = True
            self.contacts[c.cid]["resolved"] = True
            self._emit(t, "contact.resolved", contact_id=c.cid)
            if m.is_async and not c.reopened and m.reopen_probability and rng.random() < m.reopen_probability:
                at = self._later(t, m.reopen_delay)
                if at is not None:
                    c.reopened = True
                    self._at(at, self._customer_writes, c, s, "contact.reopened")
                    return  # surveys and repeats wait for the final resolution
        if m.survey_probability and rng.random() < m.survey_probability:
            at = self._later(t, m.survey_delay)
            if at is not None:
                self._at(at, self._survey, c, resolved)
        repeat = m.repeat_if_resolved if resolved else m.repeat_if_unresolved
        if repeat and rng.random() < repeat:
            at = self._later(t, m.repeat_delay)
            if at is not None:
                self._at(at, self._repeat, c.origin, c.customer, c.issue, self._first_of(c))
        churn = m.churn_probability * (1 if resolved else 3)
        if churn and rng.random() < churn:
            at = self._later(t, m.churn_delay)
            if at is not None:
                self._at(at, self._churn, c.customer)

    def _survey(self, t: int, c: Contact, resolved: bool) -> None:
        m = c.stream.m
        rng = self.rng
        if c.issue == "complaint":
            kind = "complaint"
        else:
            kinds = m.survey_kinds
            kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0] if kinds else "csat"
        happy_p = (0.85 if resolved else 0.35) - (0.2 if c.waited_ms > 60_000 else 0.0)
        happy = rng.random() < happy_p
        scale = SURVEYS[kind]
        if kind == "nps":
            score = rng.choices((10, 9, 8, 7), (45, 30, 15, 10))[0] if happy else \
                rng.choices(range(11), (4, 3, 4, 6, 8, 10, 12, 14, 16, 12, 11))[0]
        elif kind == "ces":
            score = rng.choices((7, 6, 5, 4), (40, 30, 20, 10))[0] if happy else \
                rng.choices(range(1, 8), (20, 20, 20, 15, 10, 10, 5))[0]
        else:
            score = rng.choices((5, 4, 3), (60, 30, 10))[0] if happy else \
                rng.choices(range(1, 6), (30, 25, 20, 15, 10))[0]
        self._emit(t, "survey.responded", contact_id=c.cid, survey=kind, score=score, scale_max=scale)

    def _churn(self, t: int, customer: str) -> None:
        if customer != self._placeholder:  # nobody knows who an unidentified caller was
            self._emit(t, "customer.churned", customer_id=customer)
