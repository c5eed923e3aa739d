"""The Faust application: a thin shell that moves bytes between Kafka, the core books and tables.

Three agents, each with concurrency 1 (Faust can commit past in-flight messages otherwise):
  stage_one       contact-events (keyed by contact/agent/customer) -> ContactBook
                    -> facts topic: queue facts by queue, agent facts by agent
                    -> journeys topic: journey facts by customer
  stage_journeys  journeys topic -> JourneyBook (per-contact FCR / repeat / reopen, retention)
                    -> facts topic: contributions by queue
  stage_two       facts topic    -> QueueBook (+ experience, agent, resolution books) -> contact-rollups
Stage two's clock counts each journeys partition as a source besides the input partitions, so a
day is never closed before the contributions of the events before the watermark have arrived.
Tables are plain keyed, changelog-backed state (no Faust windows: their expiry runs on wall-clock
time and they lose windows on rebalance). Each value carries the partition it belongs to, and the
books are rebuilt from the tables after every recovery, so a worker holds only what it owns.
"""
from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import faust
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import deadletter
from .config import Settings
from .core.contacts import ContactBook
from .core.journeys import JourneyBook
from .core.queues import QueueBook
from .decode import BadEvent, decode
from .health import Health
from .metrics import KpiCollector
from .metrics_extra import ExtraCollector
from .topics import aiokafka_security

log = logging.getLogger("processor")
DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024  # see topics.py: the dead-letter topic accepts messages this large

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
    # One JourneyBook per owned journeys partition (customers hashed onto partitions).
    journeys: dict[int, JourneyBook] = field(default_factory=dict)
    snapshot: object | None = None  # processor.snapshot.RedisSnapshot when redis_url is set
    read_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> last offset read
    offset_gaps: int = 0  # offsets skipped by the consumer and read again (see create_app._mend_gaps)

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

    def journey_book(self, partition: int) -> JourneyBook:
        b = self.journeys.get(partition)
        if b is None:
            b = self.journeys[partition] = _journey_book(self.settings.engine(), self.settings.kafka.partitions)
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
        # Faust's own /router and /table views would show table contents (contacts' events, customer
        # and agent ids) on the metrics port: only /metrics and /healthz are served.
        web_router_enabled=False,
        web_tables_enabled=False,
        # A dead letter carries the rejected message whole, JSON-escaped: up to six times its size.
        producer_max_request_size=DEAD_LETTER_MAX_BYTES,
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
    rt.registry.register(ExtraCollector(rt))

    events_topic = app.topic(k.input_topic, partitions=k.partitions, value_serializer="raw")
    facts_topic = app.topic(k.facts_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                            internal=True)
    rollups_topic = app.topic(k.rollup_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(k.dead_letter_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")
    journeys_topic = app.topic(k.journeys_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                               internal=True)

    def table(name: str) -> "PartitionTable":  # keys and values are JSON (Faust default for tables)
        return app.tables.add(PartitionTable(app, name=name, partitions=k.partitions, beacon=app.tables.beacon))

    contacts_table = table("contacts")
    agents_table = table("agents")
    facts_table = table("queue-facts")
    published_table = table("published")
    profiles_table = table("profiles")                  # stage one: contacts no longer in progress (profile only)
    customers_table = table("customers")                # stage one: each customer's churn event ids (retention)
    journeys_table = table("journey-facts")             # journey facts by fact id

    # One lock per stage, held for each batch and by each rebuild: Faust may call on_recover while
    # an agent is between two awaits of a batch; the rebuild then waits, and reads the tables the
    # batch has written, instead of swapping the books under it (and losing what it changed).
    locks = {"one": asyncio.Lock(), "two": asyncio.Lock(), "journeys": asyncio.Lock()}

    async def _mend_gaps(batch: list, decode_value) -> list:
        """The batch, with what the consumer skipped read again: offsets must follow each other.

        faust-streaming 0.15 can drop a message fetched while recovery seeks to the committed
        offsets (the stream partitions are resumed before the flow, and a delivery that loses the
        race to `suspend_flow` is dropped with its offset marked read). Seen here after a restart
        under a backlog. A gap is logged, counted (kpi_input_offset_gaps_total) and mended by
        reading the missing offsets directly (a plain consumer, no group) into the batch; anything
        read twice is deduplicated downstream (event ids, fact ids).
        """
        out = []
        for event in batch:
            msg = event.message
            tp = (msg.topic, msg.partition)
            last = rt.read_offsets.get(tp)
            if last is not None and msg.offset > last + 1:
                rt.offset_gaps += 1
                log.error("offsets %d..%d of %s[%d] were skipped by the consumer: reading them again",
                          last + 1, msg.offset - 1, msg.topic, msg.partition)
                out += await _read_range(msg.topic, msg.partition, last + 1, msg.offset, decode_value)
            if last is None or msg.offset > last:
                rt.read_offsets[tp] = msg.offset
            out.append(event)
        return out

    async def _read_range(topic: str, partition: int, start: int, end: int, decode_value) -> list:
        """Messages [start, end) of one partition, as stand-ins for Faust events."""
        from types import SimpleNamespace

        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=k.bootstrap, group_id=None, enable_auto_commit=False,
                                    **aiokafka_security(settings))
        await consumer.start()
        out = []
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not out or out[-1].message.offset < end - 1):
                for r in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if start <= r.offset < end:
                        out.append(SimpleNamespace(
                            message=SimpleNamespace(topic=topic, partition=partition, offset=r.offset, key=r.key),
                            value=decode_value(r.value)))
        finally:
            await consumer.stop()
        return out

    def route(key: str) -> int:
        """Partition of an agent's or a customer's facts: a stable hash (Python's hash() is salted)."""
        return zlib.crc32(key.encode()) % k.partitions

    # -- stage one ---------------------------------------------------------------------------
    @app.agent(events_topic, concurrency=1)
    async def stage_one(stream):
        # Batches, not single events: deltas of a batch are coalesced per fact and sent as one
        # message per queue, and each touched contact is written to its table once per batch.
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            async with locks["one"]:  # a rebuild (on_recover) never swaps the books mid-batch
                batch = await _mend_gaps(batch, lambda raw: raw)
                # input partition -> (fact id, queue) -> fact: a fact that moves to another queue is deleted
                # from the old one and upserted in the new one, two deltas of the same id
                deltas: dict[int, dict[tuple, tuple]] = defaultdict(dict)
                not_after_ms = int((time.time() + settings.max_future_seconds) * 1000)  # wall clock: see decode()
                routed: dict[int, dict[tuple, tuple]] = defaultdict(dict)  # ... -> (fact id, topic, partition, key) -> fact
                for event in batch:
                    msg = event.message
                    part = msg.partition
                    rt.health.observe_offset(msg.topic, part, msg.offset)
                    raw = event.value if event.value is not None else b""
                    try:
                        ev = decode(raw, not_after_ms)
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
                        mine[(fact_id, queue)] = fact
                    if res.agent_deltas or res.journey_deltas:  # keyed by agent / customer: explicit partitions
                        other = routed[part]
                        for fact_id, agent, fact in res.agent_deltas:
                            other[(fact_id, "facts", route(agent), agent)] = fact
                        for fact_id, customer, fact in res.journey_deltas:
                            other[(fact_id, "journeys", route(customer), customer)] = fact
                now = time.monotonic()
                for part, mine in deltas.items():
                    book = rt.book(part)
                    rt.last_read[part] = now
                    by_queue: dict[str, list] = defaultdict(list)
                    for (fact_id, queue), fact in mine.items():
                        by_queue[queue].append(_item(fact_id, queue, fact))
                    for queue, items in by_queue.items():
                        await facts_topic.send(key=queue.encode(), value={"src": part, "wm": book.stream_ms, "d": items})
                    # Agent and journey facts: one message per target partition (not per agent or customer).
                    by_target: dict[tuple[str, int], list] = defaultdict(list)
                    for (fact_id, topic, target, key), fact in routed.get(part, {}).items():
                        by_target[(topic, target)].append(_item(fact_id, key, fact))
                    for (topic, target), items in sorted(by_target.items()):
                        await (facts_topic if topic == "facts" else journeys_topic).send(
                            partition=target, key=b"", value={"src": part, "wm": book.stream_ms, "d": items})
                    dirty_contacts, dirty_agents = book.take_dirty()
                    _persist(contacts_table, dirty_contacts, part)
                    _persist(agents_table, dirty_agents, part)
                    _persist(profiles_table, book.take_dirty_profiles(), part)
                    _persist(customers_table, book.take_dirty_customers(), part)

    def _apply_facts(batch: list, book_of) -> set[int]:
        """Fact messages ({"src", "wm", "idle", "d"}) into the book of their partition; returns the partitions touched."""
        touched: set[int] = set()
        for event in batch:
            msg = event.message
            part = msg.partition
            rt.health.observe_offset(msg.topic, part, msg.offset)
            value = event.value or {}
            book = book_of(part)
            touched.add(part)
            for fact_id, fact, *route in value.get("d", ()):
                book.apply(fact_id, tuple(fact) if fact is not None else None, *route)
            book.observe(int(value.get("wm", 0)), int(value.get("src", 0)), bool(value.get("idle")))
        return touched

    # -- stage two ---------------------------------------------------------------------------
    @app.agent(facts_topic, concurrency=1)
    async def stage_two(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            async with locks["two"]:  # a rebuild (on_recover) never swaps the books mid-batch
                touched = _apply_facts(await _mend_gaps(batch, _json), rt.queue_book)
                for part in sorted(touched):
                    book = rt.queue_book(part)
                    for rec in book.advance():
                        await rollups_topic.send(key=rollup_key(rec), value=deadletter.dumps(rec))
                        rt.health.rollup_published()
                    dirty_facts, dirty_published = book.take_dirty()
                    _persist(facts_table, dirty_facts, part)
                    _persist(published_table, dirty_published, part)

    # -- journeys (keyed by customer): resolution_day, retention_day ----------------------------
    @app.agent(journeys_topic, concurrency=1)
    async def stage_journeys(stream):
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            async with locks["journeys"]:  # a rebuild (on_recover) never swaps the books mid-batch
                touched = _apply_facts(await _mend_gaps(batch, _json), rt.journey_book)
                for part in sorted(touched):
                    book = rt.journey_book(part)
                    await _send_contributions(book, part)
                    _persist(journeys_table, book.take_dirty(), part)

    async def _send_contributions(book: JourneyBook, part: int) -> None:
        """The journey book's contributions, by queue, to stage two; its clock as source N + partition."""
        by_queue: dict[str, list] = defaultdict(list)
        for fact_id, queue, fact in book.take_deltas():
            by_queue[queue].append(_item(fact_id, queue, fact))
        for queue, items in by_queue.items():
            await facts_topic.send(key=queue.encode(), value={"src": k.partitions + part, "wm": book.stream_ms, "d": items})

    # -- stream time for idle partitions, and housekeeping ------------------------------------
    @app.timer(TICK_SECONDS)
    async def tick():
        """Repeat each owned input partition's stream time to every stage-two partition.

        Quiet queues still close their intervals, and a partition with nothing to read is marked
        idle so that it no longer holds the watermark back. The stage locks make sure a stream time
        is never announced while the facts of the batch that reached it are still being sent.
        """
        now = time.monotonic()
        async with locks["one"]:
            for src, book in list(rt.contacts.items()):
                idle = now - rt.last_read.setdefault(src, now) >= IDLE_SECONDS
                if book.stream_ms == 0 and not idle:
                    continue  # just assigned and not read yet: say nothing rather than "time zero"
                for p in range(k.partitions):
                    await facts_topic.send(partition=p, key=b"", value={"src": src, "wm": book.stream_ms, "idle": idle, "d": []})
                    await journeys_topic.send(partition=p, key=b"", value={"src": src, "wm": book.stream_ms, "idle": idle, "d": []})
        async with locks["journeys"]:
            for part, book in list(rt.journeys.items()):
                if book.stream_ms == 0:
                    continue  # no clock yet (not every input partition has reported to it)
                for p in range(k.partitions):
                    await facts_topic.send(partition=p, key=b"", value={"src": k.partitions + part, "wm": book.stream_ms, "d": []})

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
        async with locks["one"]:
            for book in list(rt.contacts.values()):
                book.expire()
        async with locks["two"]:
            for book in list(rt.queues.values()):
                book.expire()
        async with locks["journeys"]:
            for book in list(rt.journeys.values()):
                book.expire()

    # -- recovery: rebuild the books from the tables for exactly the partitions we own ----------
    @contacts_table.on_recover
    async def _recover_stage_one():
        async with locks["one"]:
            rt.read_offsets = {tp: o for tp, o in rt.read_offsets.items() if tp[0] != k.input_topic}  # Faust seeks anew
            owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.input_topic}
            books = {p: ContactBook(engine) for p in owned}
            for cid, (p, state) in contacts_table.items():
                if p in books and state is not None:
                    books[p].restore_contact(cid, state)
            for aid, (p, state) in agents_table.items():
                if p in books and state is not None:
                    books[p].restore_agent(aid, state)
            for cid, (p, state) in profiles_table.items():
                if p in books and state is not None and cid not in books[p].contacts:
                    books[p].restore_profile(cid, state)
            for customer, (p, state) in customers_table.items():
                if p in books and state is not None:
                    books[p].restore_customer(customer, state)
            rt.contacts = books
            now = time.monotonic()
            rt.last_read = {p: rt.last_read.get(p, now) for p in owned}
            log.info("stage one rebuilt: %d contacts, %d agents, partitions %s",
                     sum(len(b.contacts) for b in books.values()), sum(len(b.agents) for b in books.values()), sorted(owned))

    @facts_table.on_recover
    async def _recover_stage_two():
        async with locks["two"]:
            rt.read_offsets = {tp: o for tp, o in rt.read_offsets.items() if tp[0] != k.facts_topic}  # Faust seeks anew
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

    @journeys_table.on_recover
    async def _recover_journeys():
        async with locks["journeys"]:
            rt.read_offsets = {tp: o for tp, o in rt.read_offsets.items() if tp[0] != k.journeys_topic}  # Faust seeks anew
            owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.journeys_topic}
            books = {p: _journey_book(engine, k.partitions) for p in owned}
            stored: dict[int, list] = defaultdict(list)
            for fid, (p, fact) in journeys_table.items():
                if p in books and fact is not None:
                    stored[p].append((fid, fact))
            for p, facts in stored.items():
                books[p].restore(facts)
            for p, book in books.items():
                old = rt.journeys.get(p)
                if old is not None:  # kept through the rebalance: keep its clock too
                    book.sources, book.heard = dict(old.sources), set(old.heard)
                    book.stream_ms, book.latest_ms = old.stream_ms, old.latest_ms
            rt.journeys = books
            log.info("journeys rebuilt: %d facts, partitions %s",
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


def _json(raw: bytes | None):
    import json
    return json.loads(raw) if raw else None


def _item(fact_id: str, route: str, fact: tuple | None) -> list:
    """A delta on the wire: [id, fact] for an upsert, [id, null, route] for a delete (see QueueBook.apply)."""
    return [fact_id, list(fact)] if fact is not None else [fact_id, None, route]


def _queue_book(engine, input_partitions: int) -> QueueBook:
    book = QueueBook(engine)
    book.expected_sources = 2 * input_partitions  # the input partitions, and the journeys partitions
    return book


def _journey_book(engine, input_partitions: int) -> JourneyBook:
    book = JourneyBook(engine)
    book.expected_sources = input_partitions
    return book


def rollup_key(rec: dict) -> bytes:
    """Message key of a rollup record: what identifies it (the highest version per key wins)."""
    if rec["kind"] == "queue_interval":  # unchanged since the first release
        return f"{rec['queue_id']}|{rec['channel']}|{rec['interval_start']}".encode()
    if rec["kind"] == "agent_interval":
        return f"agent_interval|{rec['agent_id']}|{rec['interval_start']}".encode()
    key = f"{rec['kind']}|{rec['queue_id']}|{rec['channel']}|{rec['interval_start']}"
    if rec["kind"] == "retention_day":
        key += f"|{rec['horizon_days']}"
    return key.encode()


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

    def _new_store_by_url(self, url):
        if str(url).startswith("rocksdb:"):
            return _partition_rocksdb_store()(
                url, self.app, self, table_name=self.name, key_type=self.key_type,
                key_serializer=self.key_serializer, value_serializer=self.value_serializer,
                value_type=self.value_type, loop=self.loop, options=self.options)
        return super()._new_store_by_url(url)


def _partition_rocksdb_store():
    """Faust's RocksDB store, writing each key to the local database of the partition its write names.

    Faust's store takes the partition from the event being processed, which is wrong for a batch
    spanning partitions (and there is none in a timer); reads then look a key up in every open
    partition database (the store's key index makes that one lookup in the common case).
    """
    from faust.stores.rocksdb import Store

    class PartitionRocksDBStore(Store):
        def _set(self, key: bytes, value: bytes | None) -> None:
            partition = self.table._write_partition
            if partition is None:
                return super()._set(key, value)
            self._key_index[key] = partition
            self._db_for_partition(partition).put(key, value)

        def _get(self, key: bytes) -> bytes | None:
            found = self._get_bucket_for_key(key)
            return None if found is None else found[1]

        def _contains(self, key: bytes) -> bool:
            return self._get_bucket_for_key(key) is not None

    return PartitionRocksDBStore


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
