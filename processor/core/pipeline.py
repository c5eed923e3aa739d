"""Both stages wired back to back in one process: what `kpi replay` and the tests run.

The streaming shell runs the same two books, with a Kafka topic between them instead of a call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .contacts import ContactBook, DeadLetter
from .events import Event
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
    counts: PipelineCounts = field(default_factory=PipelineCounts)

    def __post_init__(self) -> None:
        self.contacts = ContactBook(self.settings)
        self.queues = QueueBook(self.settings)

    def feed(self, event: Event) -> tuple[list[dict], list[DeadLetter]]:
        res = self.contacts.ingest(event)
        self.counts.events += 1
        self.counts.duplicates += res.duplicate
        self.counts.dead_letters += len(res.dead_letters)
        for fact_id, _queue, fact in res.deltas:
            self.queues.apply(fact_id, fact)
        self.queues.observe(self.contacts.stream_ms)
        records = self.queues.advance()
        # Nothing persists here, so dirty-key tracking (for the streaming shell's tables) is dropped.
        self.contacts.dirty_contacts.clear()
        self.contacts.dirty_agents.clear()
        self.queues.dirty_facts.clear()
        self.queues.dirty_published.clear()
        self.counts.records += len(records)
        if self.counts.events % EXPIRE_EVERY == 0:
            self.contacts.expire()
            self.queues.expire()
        return records, res.dead_letters

    def finish(self, flush: bool = True) -> list[dict]:
        """End of input. With flush, every open interval is published as if the watermark were +inf."""
        records = self.queues.flush_all() if flush else self.queues.advance()
        self.counts.records += len(records)
        return records
