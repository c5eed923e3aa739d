"""What one worker process holds: the books (`Runtime`) and the parts its stages share (`Worker`).

`Runtime` is what the collectors and the CLI read; `Worker` is what create_app wires together and
hands to each part (stages, clock, housekeeping, recovery, offsets, pages), instead of a closure.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from ..config import KafkaConfig, Settings
from ..core.contacts import ContactBook
from ..core.journeys import JourneyBook
from ..core.queues import QueueBook
from ..loophold import HoldMonitor
from ..offset_guard import RepeatGuard
from .health import Health

if TYPE_CHECKING:
    import faust

    from .intake import Intake
    from .offsets import GapReader
    from .output import Output
    from .tables import Tables


@dataclass
class Runtime:
    """Everything the agents share inside one worker process."""

    settings: Settings
    health: Health
    registry: CollectorRegistry
    # One ContactBook per owned input partition: each partition keeps its own stream time, as a
    # Kafka Streams task does, so a backlog on one partition is never judged late against another.
    contacts: dict[int, ContactBook] = field(default_factory=dict)
    last_read: dict[int, float] = field(default_factory=dict)  # input partition -> wall time of last event
    # One QueueBook per owned facts partition: a watermark read on one facts partition says nothing
    # about facts still in flight on another, so each partition closes its own queues' intervals.
    queues: dict[int, QueueBook] = field(default_factory=dict)
    # One JourneyBook per owned journeys partition (customers hashed onto partitions).
    journeys: dict[int, JourneyBook] = field(default_factory=dict)
    snapshot: object | None = None  # processor.snapshot.RedisSnapshot when redis_url is set
    guard: RepeatGuard = field(default_factory=RepeatGuard)  # which offsets are applied (processor/offset_guard.py)
    offset_gaps: int = 0  # offsets skipped by the consumer and read again (offsets.mend_gaps)
    offset_repeats: int = 0  # offsets delivered again after a later one (not applied twice)
    offsets_held: int = 0  # records handed over between a rebuild and its seek (they come again)
    fetch_stalls: int = 0  # partitions sought back after Faust dropped fetched records (offsets.StallWatch)
    output: Output | None = None  # its backlog: kpi_output_batches_in_flight
    holds: HoldMonitor = field(default_factory=HoldMonitor)  # event-loop holds (processor/loophold.py)

    def book(self, partition: int) -> ContactBook:
        b = self.contacts.get(partition)
        if b is None:
            b = self.contacts[partition] = ContactBook(self.settings.engine())
        return b

    def queue_book(self, partition: int) -> QueueBook:
        b = self.queues.get(partition)
        if b is None:
            b = self.queues[partition] = new_queue_book(self.settings.engine(), self.settings.kafka.partitions)
        return b

    def journey_book(self, partition: int) -> JourneyBook:
        b = self.journeys.get(partition)
        if b is None:
            b = self.journeys[partition] = new_journey_book(self.settings.engine(), self.settings.kafka.partitions)
        return b

    @property
    def watermark_ms(self) -> int:
        """The slowest owned facts partition's watermark: intervals before it are closed."""
        return min((b.stream_ms for b in self.queues.values()), default=0)

    @property
    def stream_ms(self) -> int:
        """Newest event time read on any owned input partition."""
        return max((b.stream_ms for b in self.contacts.values()), default=0)


@dataclass
class Topics:
    """The worker's five topics (faust.Topic each)."""

    events: object
    facts: object
    rollups: object
    dead_letters: object
    journeys: object


@dataclass
class Worker:
    """The parts of one worker that its agents, timers, rebuilds and pages share."""

    app: "faust.App"
    rt: Runtime
    topics: Topics
    tables: "Tables"
    # One lock per stage, held for each batch and by each rebuild: Faust may call on_recover while
    # an agent is between two awaits of a batch; the rebuild then waits, and reads the tables the
    # batch has written, instead of swapping the books under it (and losing what it changed).
    locks: dict[str, asyncio.Lock]
    out: "Output"
    intakes: dict[str, "Intake"]
    gap_reader: "GapReader"
    engine: object  # settings.engine(), once: what the rebuilt books are made with

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    @property
    def k(self) -> KafkaConfig:
        return self.rt.settings.kafka

    @property
    def holds(self) -> HoldMonitor:
        return self.rt.holds

    @property
    def stream_topics(self) -> tuple[str, str, str]:
        """The topics the stages read: input, facts, journeys."""
        k = self.rt.settings.kafka
        return (k.input_topic, k.facts_topic, k.journeys_topic)


def new_queue_book(engine, input_partitions: int) -> QueueBook:
    book = QueueBook(engine)
    book.expected_sources = 2 * input_partitions  # the input partitions, and the journeys partitions
    return book


def new_journey_book(engine, input_partitions: int) -> JourneyBook:
    book = JourneyBook(engine)
    book.expected_sources = input_partitions
    return book
