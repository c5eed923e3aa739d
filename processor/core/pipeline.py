"""Every stage wired back to back in one process: what `kpi replay` and the tests run.

Stage one (ContactBook) feeds stage two (QueueBook, with its experience and agent books) and the
journey book (resolution and retention, keyed by customer). The streaming shell runs the same
books, with Kafka topics between them instead of calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .contacts import ContactBook, DeadLetter
from .events import Event
from .journeys import JourneyBook
from .queues import QueueBook
from .settings import EngineSettings

EXPIRE_EVERY = 10_000  # events between housekeeping passes


@dataclass(slots=True)
class PipelineCounts:
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    records: int = 0


@dataclass(slots=True)
class Pipeline:
    settings: EngineSettings
    contacts: ContactBook = field(init=False)
    queues: QueueBook = field(init=False)
    journeys: JourneyBook = field(init=False)
    counts: PipelineCounts = field(default_factory=PipelineCounts)

    def __post_init__(self) -> None:
        self.contacts = ContactBook(self.settings)
        self.queues = QueueBook(self.settings)
        self.journeys = JourneyBook(self.settings)

    def feed(self, event: Event) -> tuple[list[dict], list[DeadLetter]]:
        res = self.contacts.ingest(event)
        self.counts.events += 1
        self.counts.duplicates += res.duplicate
        self.counts.dead_letters += len(res.dead_letters)
        for fact_id, route, fact in res.deltas:
            self.queues.apply(fact_id, fact, route)
        for fact_id, route, fact in res.agent_deltas:
            self.queues.apply(fact_id, fact, route)
        for fact_id, route, fact in res.journey_deltas:
            self.journeys.apply(fact_id, fact, route)
        for fact_id, route, fact in self.journeys.take_deltas():
            self.queues.apply(fact_id, fact, route)
        self.queues.observe(self.contacts.stream_ms)
        self.journeys.observe(self.contacts.stream_ms)
        records = self.queues.advance()
        # Nothing persists here, so dirty-key tracking (for the streaming shell's tables) is dropped.
        self.contacts.dirty_contacts.clear()
        self.contacts.dirty_agents.clear()
        self.contacts.dirty_profiles.clear()
        self.queues.clear_dirty()
        self.journeys.dirty_facts.clear()
        self.counts.records += len(records)
        if self.counts.events % EXPIRE_EVERY == 0:
            self.expire()
        return records, res.dead_letters

    def expire(self) -> None:
        """Housekeeping of every book (the shell runs it on a timer)."""
        self.contacts.expire()
        self.queues.expire()
        self.journeys.expire()
        for fact_id, route, fact in self.journeys.take_deltas():
            self.queues.apply(fact_id, fact, route)

    def finish(self, flush: bool = True) -> list[dict]:
        """End of input. With flush, every open record is published as if the watermark were +inf."""
        records = self.queues.flush_all() if flush else self.queues.advance()
        self.counts.records += len(records)
        return records
