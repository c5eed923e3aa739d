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
    from_the_future: int = 0  # of the dead letters: decoder rejections past the wall-clock bound (replay)


@dataclass(slots=True)
class Pipeline:
    settings: EngineSettings
    contacts: ContactBook = field(init=False)
    queues: QueueBook = field(init=False)
    journeys: JourneyBook = field(init=False)
    counts: PipelineCounts = field(default_factory=PipelineCounts)
    _observed: int | None = field(default=None, init=False)  # the stream time the books last observed

    def __post_init__(self) -> None:
        self.contacts = ContactBook(self.settings)
        self.queues = QueueBook(self.settings)
        self.journeys = JourneyBook(self.settings)

    def feed(self, event: Event) -> tuple[list[dict], list[DeadLetter]]:
        res = self.contacts.ingest(event)
        counts = self.counts
        counts.events += 1
        if res.duplicate:
            counts.duplicates += 1
        if res.dead_letters:
            counts.dead_letters += len(res.dead_letters)
        records = self.downstream(res.deltas, res.agent_deltas, res.journey_deltas, self.contacts.stream_ms)
        return records, res.dead_letters

    def downstream(self, deltas: list, agent_deltas: list, journey_deltas: list, stream_ms: int) -> list[dict]:
        """Everything after stage one for one event (counted already): its deltas through the journey
        and queue books, the clocks moved to stage one's stream time, and the records now due.

        `kpi replay` may run stage one in another process and call this with what it sent."""
        queues, journeys = self.queues, self.journeys
        if deltas:
            queues.apply_all(deltas)
        if agent_deltas:
            queues.apply_all(agent_deltas)
        if journey_deltas:
            for fact_id, route, fact in journey_deltas:
                journeys.apply(fact_id, fact, route)
        if journeys.deltas:
            queues.apply_all(journeys.take_deltas())
        if stream_ms != self._observed:  # observing the same stream time again changes nothing
            self._observed = stream_ms
            queues.observe(stream_ms)
            journeys.observe(stream_ms)
        records = queues.advance()
        if records:
            self.counts.records += len(records)
        if self.counts.events % EXPIRE_EVERY == 0:
            self.expire()
        return records

    def clear_dirty(self) -> None:
        """Nothing persists here: forget which keys changed (tracked for the streaming shell's tables).
        Done in batches, not per event: the sets are only ever read by take_dirty()."""
        self.contacts.clear_dirty()
        self.queues.clear_dirty()
        self.journeys.dirty_facts.clear()

    def expire(self) -> None:
        """Housekeeping of every book (the shell runs it on a timer). Stage one's expiry emits nothing
        and reads no other book: a stage one in another process runs it at the same events."""
        self.clear_dirty()
        self.contacts.expire()
        self.queues.expire()
        self.journeys.expire()
        for fact_id, route, fact in self.journeys.take_deltas():
            self.queues.apply(fact_id, fact, route)
        self.clear_dirty()

    def finish(self, flush: bool = True) -> list[dict]:
        """End of input. With flush, every open record is published as if the watermark were +inf (an agent's
        state, though, only up to the end of the interval of the last event: docs/agents.md)."""
        records = self.queues.flush_all() if flush else self.queues.advance()
        self.counts.records += len(records)
        return records
