"""The Faust application: a thin shell that moves bytes between Kafka, the core books and tables.

Two agents, each with concurrency 1 (Faust can commit past in-flight messages otherwise):
  stage_one  contact-events (keyed by contact/agent)  -> ContactBook -> facts topic (keyed by queue)
  stage_two  facts topic (keyed by queue)             -> QueueBook   -> contact-rollups
Tables are plain keyed, changelog-backed state (no Faust windows: their expiry runs on wall-clock
time and they lose windows on rebalance). Each value carries the partition it belongs to, and the
books are rebuilt from the tables after every recovery, so a worker holds only what it owns.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import faust
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import deadletter
from .config import Settings
from .core.contacts import ContactBook
from .core.queues import QueueBook
from .decode import BadEvent, decode
from .health import Health
from .metrics import KpiCollector

log = logging.getLogger("processor")

TICK_SECONDS = 1.0
EXPIRE_SECONDS = 30.0
IDLE_SECONDS = 5.0
BATCH_MAX = 1000              # events handled together by an agent (Faust's per-message cost is the limit)
BATCH_WITHIN_SECONDS = 0.05   # ...or whatever arrived within this time, so latency stays low  # an input partition with nothing read for this long stops holding the watermark


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
    snapshot: object | None = None  # processor.snapshot.RedisSnapshot when redis_url is set

    def book(self, partition: int) -> ContactBook:
        b = self.contacts.get(partition)
        if b is None:
            b = self.contacts[partition] = ContactBook(self.settings.engine())
        return b

    def queue_book(self, partition: int) -> QueueBook:
        b = self.queues.get(partition)
        if b is None:
            b = self.queues[partition] = _queue_book(self.settings.engine(), self.settings.kafka.partitions)
        return b

    @property
    def watermark_ms(self) -> int:
        """The slowest owned facts partition's watermark: intervals before it are closed."""
        return min((b.stream_ms for b in self.queues.values()), default=0)

    @property
    def stream_ms(self) -> int:
        """Newest event time read on any owned input partition."""
        return max((b.stream_ms for b in self.contacts.values()), default=0)


def _kafka_security(settings: Settings) -> dict:
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    import ssl

    from faust.auth import SASLCredentials, SSLCredentials

    ctx = ssl.create_default_context(cafile=str(k.ssl_cafile) if k.ssl_cafile else None)
    if k.security_protocol == "SSL":
        return {"broker_credentials": SSLCredentials(ctx)}
    password = k.sasl_password.get_secret_value() if k.sasl_password else None
    return {"broker_credentials": SASLCredentials(
        username=k.sasl_username, password=password, mechanism=k.sasl_mechanism,
        ssl_context=ctx if k.security_protocol == "SASL_SSL" else None)}


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    k = settings.kafka
    engine = settings.engine()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{k.bootstrap}",
        store=settings.store,
        datadir=str(settings.data_dir),
        processing_guarantee=k.processing_guarantee,
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        broker_session_timeout=k.session_timeout_seconds,
        broker_heartbeat_interval=k.session_timeout_seconds / 3,
        **_kafka_security(settings),
    )
    rt = Runtime(settings, Health(), CollectorRegistry(auto_describe=True))
    rt.registry.register(KpiCollector(rt, app))

    events_topic = app.topic(k.input_topic, partitions=k.partitions, value_serializer="raw")
    facts_topic = app.topic(k.facts_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                            internal=True)
    rollups_topic = app.topic(k.rollup_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(k.dead_letter_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")

    def table(name: str) -> "PartitionTable":  # keys and values are JSON (Faust default for tables)
        return app.tables.add(PartitionTable(app, name=name, partitions=k.partitions, beacon=app.tables.beacon))

    contacts_table = table("contacts")
    agents_table = table("agents")
    facts_table = table("queue-facts")
    published_table = table("published")

    # -- stage one ---------------------------------------------------------------------------
    @app.agent(events_topic, concurrency=1)
    async def stage_one(stream):
        # Batches, not single events: deltas of a batch are coalesced per fact and sent as one
        # message per queue, and each touched contact is written to its table once per batch.
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            deltas: dict[int, dict[str, tuple]] = defaultdict(dict)  # input partition -> fact id -> (queue, fact)
            for event in batch:
                msg = event.message
                part = msg.partition
                rt.health.observe_offset(msg.topic, part, msg.offset)
                raw = event.value if event.value is not None else b""
                try:
                    ev = decode(raw)
                except BadEvent as exc:
                    rt.health.dead_letter(exc.reason, exc.detail)
                    await dlq_topic.send(key=msg.key, value=deadletter.dumps(deadletter.from_raw(exc.reason, exc.detail, raw)))
                    continue
                book = rt.book(part)
                res = book.ingest(ev)
                rt.health.processed(ev.ts_ms, res.duplicate)
                for dl in res.dead_letters:
                    rt.health.dead_letter(dl.reason, dl.detail)
                    await dlq_topic.send(key=msg.key, value=deadletter.dumps(deadletter.from_core(dl)))
                mine = deltas[part]
                for fact_id, queue, fact in res.deltas:
                    mine[fact_id] = (queue, fact)
            now = time.monotonic()
            for part, mine in deltas.items():
                book = rt.book(part)
                rt.last_read[part] = now
                by_queue: dict[str, list] = defaultdict(list)
                for fact_id, (queue, fact) in mine.items():
                    by_queue[queue].append([fact_id, list(fact) if fact is not None else None])
                for queue, items in by_queue.items():
                    await facts_topic.send(key=queue.encode(), value={"src": part, "wm": book.stream_ms, "d": items})
                dirty_contacts, dirty_agents = book.take_dirty()
                _persist(contacts_table, dirty_contacts, part)
                _persist(agents_table, dirty_agents, part)

    # -- stage two ---------------------------------------------------------------------------
    @app.agent(facts_topic, concurrency=1)
    async def stage_two(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            touched: set[int] = set()
            for event in batch:
                msg = event.message
                part = msg.partition
                rt.health.observe_offset(msg.topic, part, msg.offset)
                value = event.value or {}
                book = rt.queue_book(part)
                touched.add(part)
                for fact_id, fact in value.get("d", ()):
                    book.apply(fact_id, tuple(fact) if fact is not None else None)
                book.observe(int(value.get("wm", 0)), int(value.get("src", 0)), bool(value.get("idle")))
            for part in sorted(touched):
                book = rt.queue_book(part)
                for rec in book.advance():
                    key = f"{rec['queue_id']}|{rec['channel']}|{rec['interval_start']}".encode()
                    await rollups_topic.send(key=key, value=deadletter.dumps(rec))
                    rt.health.rollup_published()
                dirty_facts, dirty_published = book.take_dirty()
                _persist(facts_table, dirty_facts, part)
                _persist(published_table, dirty_published, part)

    # -- stream time for idle partitions, and housekeeping ------------------------------------
    @app.timer(TICK_SECONDS)
    async def tick():
        """Repeat each owned input partition's stream time to every stage-two partition.

        Quiet queues still close their intervals, and a partition with nothing to read is marked
        idle so that it no longer holds the watermark back.
        """
        now = time.monotonic()
        for src, book in list(rt.contacts.items()):
            idle = now - rt.last_read.setdefault(src, now) >= IDLE_SECONDS
            if book.stream_ms == 0 and not idle:
                continue  # just assigned and not read yet: say nothing rather than "time zero"
            for p in range(k.partitions):
                await facts_topic.send(partition=p, key=b"", value={"src": src, "wm": book.stream_ms, "idle": idle, "d": []})

    if settings.redis_url is not None:  # the live snapshot for the wallboard (processor/snapshot.py)
        from .snapshot import SNAPSHOT_SECONDS, RedisSnapshot
        snap = rt.snapshot = RedisSnapshot(settings.redis_url.get_secret_value())

        @app.timer(SNAPSHOT_SECONDS)
        async def redis_snapshot():
            snap.offer(rt.queues)  # computes only; a background task writes, never blocking this

        @app.task
        async def redis_snapshot_writer():
            await snap.run()  # until the worker stops (cancelled), then closes the connection

    @app.timer(EXPIRE_SECONDS)
    async def housekeeping():
        # Expiry only marks keys dirty; they are deleted from the tables by the next event of the stage.
        for book in list(rt.contacts.values()):
            book.expire()
        for book in list(rt.queues.values()):
            book.expire()

    # -- recovery: rebuild the books from the tables for exactly the partitions we own ----------
    @contacts_table.on_recover
    async def _recover_stage_one():
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.input_topic}
        books = {p: ContactBook(engine) for p in owned}
        for cid, (p, state) in contacts_table.items():
            if p in books and state is not None:
                books[p].restore_contact(cid, state)
        for aid, (p, state) in agents_table.items():
            if p in books and state is not None:
                books[p].restore_agent(aid, state)
        rt.contacts = books
        now = time.monotonic()
        rt.last_read = {p: rt.last_read.get(p, now) for p in owned}
        log.info("stage one rebuilt: %d contacts, %d agents, partitions %s",
                 sum(len(b.contacts) for b in books.values()), sum(len(b.agents) for b in books.values()), sorted(owned))

    @facts_table.on_recover
    async def _recover_stage_two():
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.facts_topic}
        books = {p: _queue_book(engine, k.partitions) for p in owned}
        for fid, (p, fact) in facts_table.items():
            if p in books and fact is not None:
                books[p].restore_fact(fid, fact)
        for key, (p, value) in published_table.items():
            if p in books and value is not None:
                books[p].restore_published(key, value)
        for p, book in books.items():
            old = rt.queues.get(p)
            if old is not None:  # kept through the rebalance: keep its clock too
                book.sources, book.heard = dict(old.sources), set(old.heard)
                book.stream_ms, book.latest_ms = old.stream_ms, old.latest_ms
        rt.queues = books
        log.info("stage two rebuilt: %d facts, partitions %s",
                 sum(len(b.facts) for b in books.values()), sorted(owned))

    @app.page("/metrics")
    async def metrics(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition type goes in as a header.
        return web.bytes(generate_latest(rt.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"status": "ok", "stream_time_ms": rt.stream_ms, "watermark_ms": rt.watermark_ms,
                         "uptime_seconds": round(time.monotonic() - rt.health.started, 1)})

    app.kpi_runtime = rt  # for tests and the CLI
    return app, rt


def _queue_book(engine, input_partitions: int) -> QueueBook:
    book = QueueBook(engine)
    book.expected_sources = input_partitions
    return book


class PartitionTable(faust.Table):
    """A table whose writes name their changelog partition.

    Faust takes it from the event being processed; an agent that handles a batch spanning
    several partitions must say which partition each key belongs to.
    """

    _write_partition: int | None = None

    def partition_for_key(self, key):
        if self._write_partition is not None:
            return self._write_partition
        return super().partition_for_key(key)


def _persist(table: PartitionTable, dirty: dict, partition: int) -> None:
    table._write_partition = partition
    try:
        for key, value in dirty.items():
            if value is None:
                if key in table:
                    del table[key]
            else:
                table[key] = [partition, value]
    finally:
        table._write_partition = None
