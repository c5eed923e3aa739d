"""Small builders shared by the core's unit and property tests (no conftest magic).

Times are written as wall-clock strings on one test day, 2026-11-23, in UTC unless a full
RFC 3339 string is given: at("10:14:59.999"), at("2026-11-23T23:30:00-05:00").
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from processor.core.events import Event, parse_ts_ms
from processor.core.pipeline import Pipeline
from processor.core.publish import record_identity
from processor.core.settings import EngineSettings, QueueSettings

DAY = "2026-11-23"
_ids = itertools.count(1)


def at(text: str) -> int:
    """'10:00:05' or '10:00:05.120' on the test day (UTC), or any full RFC 3339 time, to epoch ms."""
    if "T" not in text:
        text = f"{DAY}T{text}Z"
    return parse_ts_ms(text)


def ms(t: int | str) -> int:
    return t if isinstance(t, int) else at(t)


def ev(type_: str, t: int | str, contact_id: str | None = None, *, event_id: str | None = None, **fields) -> Event:
    """One Event with a fresh unique id unless one is given."""
    return Event(event_id=event_id or f"e{next(_ids)}", type=type_, ts_ms=ms(t), contact_id=contact_id, **fields)


@dataclass
class Contact:
    """Fluent builder of one contact's lifecycle events (in the order written)."""

    contact_id: str
    channel: str | None = "voice"
    created: int | str | None = None
    customer_id: str = "cust"
    events: list[Event] = field(default_factory=list)
    agent: str = "a1"
    issue: str | None = None

    def __post_init__(self) -> None:
        if self.created is not None and self.channel is not None:
            self.events.append(ev("contact.created", self.created, self.contact_id,
                                  channel=self.channel, customer_id=self.customer_id, issue=self.issue))

    def _add(self, type_: str, t, **fields) -> "Contact":
        self.events.append(ev(type_, t, self.contact_id, **fields))
        return self

    def queued(self, queue: str, t) -> "Contact":
        return self._add("contact.queued", t, queue_id=queue)

    def answered(self, queue: str, t, agent: str | None = None) -> "Contact":
        return self._add("contact.answered", t, queue_id=queue, agent_id=agent or self.agent)

    def abandoned(self, queue: str, t) -> "Contact":
        return self._add("contact.abandoned", t, queue_id=queue)

    def flowed_out(self, queue: str, t, reason: str = "timeout") -> "Contact":
        return self._add("contact.flowed_out", t, queue_id=queue, reason=reason)

    def hold(self, start, end) -> "Contact":
        self._add("contact.hold_started", start, agent_id=self.agent)
        return self._add("contact.hold_ended", end, agent_id=self.agent)

    def transferred(self, to_queue: str, t) -> "Contact":
        return self._add("contact.transferred", t, agent_id=self.agent, to_queue_id=to_queue)

    def wrapup(self, start, end) -> "Contact":
        self._add("contact.wrapup_started", start, agent_id=self.agent)
        return self._add("contact.wrapup_ended", end, agent_id=self.agent)

    def replied(self, t, automated: bool = False) -> "Contact":
        return self._add("message.agent_replied", t, agent_id=self.agent, automated=automated)

    def resolved(self, t) -> "Contact":
        return self._add("contact.resolved", t)

    def reopened(self, t) -> "Contact":
        return self._add("contact.reopened", t)

    def survey(self, kind: str, score: float, scale_max: float, t) -> "Contact":
        return self._add("survey.responded", t, survey=kind, score=float(score), scale_max=float(scale_max))

    def qa(self, score: float, t) -> "Contact":
        return self._add("qa.scored", t, agent_id=self.agent, score=float(score))


def agent_state(agent: str, state: str, t, queues: tuple[str, ...] = ("Q1",), capacity: int | None = None) -> Event:
    return ev("agent.state_changed", t, agent_id=agent, state=state, queues=queues, capacity=capacity)


def churned(customer: str, t) -> Event:
    return ev("customer.churned", t, customer_id=customer)


def engine(interval_minutes: int = 15, lateness_s: float = 30, retention_s: float = 7200,
           queues: dict[str, QueueSettings] | None = None, window_days: float = 7, **default) -> EngineSettings:
    return EngineSettings(
        interval_minutes=interval_minutes,
        lateness_ms=round(lateness_s * 1000),
        retention_ms=round(retention_s * 1000),
        default_queue=QueueSettings(**default),
        queues=tuple(sorted((queues or {}).items())),
        recontact_window_ms=round(window_days * 86_400_000),
    )


@dataclass
class Run:
    pipeline: Pipeline
    records: list[dict]          # every queue_interval record, in publication order
    dead: list                   # every DeadLetter
    all_records: list[dict] = field(default_factory=list)  # every record of every kind, in publication order

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.all_records if r["kind"] == kind]

    def latest(self) -> dict[tuple[str, str, str], dict]:
        """Highest version of each (queue, channel, interval_start)."""
        out: dict[tuple[str, str, str], dict] = {}
        for r in self.records:
            k = (r["queue_id"], r["channel"], r["interval_start"])
            if k not in out or r["version"] > out[k]["version"]:
                out[k] = r
        return out

    def record(self, queue: str, start: str, channel: str = "voice") -> dict:
        return self.latest()[(queue, channel, f"{DAY}T{start}.000Z" if "T" not in start else start)]

    def latest_of(self, kind: str) -> dict[tuple, dict]:
        """Highest version of each record of a kind, keyed by its identifying fields."""
        out: dict[tuple, dict] = {}
        for r in self.of(kind):
            k = record_key(r)
            if k not in out or r["version"] > out[k]["version"]:
                out[k] = r
        return out


def record_key(r: dict) -> tuple:
    """`record_identity` with the kind always first (queue_interval's identity has none), as the tests index records."""
    ident = record_identity(r)
    return ident if ident[0] == r["kind"] else (r["kind"], *ident)


def run(events, settings: EngineSettings | None = None, flush: bool = True) -> Run:
    """Feed the events in the given (arrival) order through a fresh Pipeline."""
    p = Pipeline(settings or engine())
    records, dead = [], []
    for e in events:
        recs, dls = p.feed(e)
        records += recs
        dead += dls
    records += p.finish(flush=flush)
    return Run(p, [r for r in records if r["kind"] == "queue_interval"], dead, records)


def by_time(*contacts: Contact) -> list[Event]:
    """All events of the contacts in event-time order (stable)."""
    return sorted((e for c in contacts for e in c.events), key=lambda e: e.ts_ms)


def tick(t, contact_id: str = "tick") -> Event:
    """An event that only advances stream time (a resolved on an unrelated contact creates no fact)."""
    return ev("contact.resolved", t, contact_id)


def expire_as_drawn(expire, sweep: int | None) -> None:
    """One housekeeping step of a sliced-expiry property: `sweep` None, none; 0, a whole pass
    (`expire()`); n, a slice (`expire(limit=n)`), and for an even n more slices while they come back
    full (a pass that may stop half way and resume at a later point)."""
    if sweep == 0:
        expire()
    elif sweep is not None:
        done = expire(limit=sweep)
        assert done <= sweep
        while done == sweep and sweep % 2 == 0:
            done = expire(limit=sweep)


def check_expiry_changes_no_record(replay, steps: list, data) -> None:
    """`replay(steps, sweeps)` (the records a book publishes) is the same with housekeeping nowhere, at
    drawn points sliced anyhow, everywhere whole, and everywhere in slices of one."""
    from hypothesis import strategies as st

    sweeps = data.draw(st.lists(st.one_of(st.none(), st.none(), st.just(0), st.integers(1, 4)),
                                min_size=len(steps), max_size=len(steps)))
    never = replay(steps, [None] * len(steps))
    assert replay(steps, sweeps) == never
    assert replay(steps, [0] * len(steps)) == never
    assert replay(steps, [1] * len(steps)) == never
