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
import orjson
from faust.stores.memory import Store as MemoryStore
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import deadletter, intake
from .config import Settings
from .consumer_tuning import (StallWatch, broker_highwaters, fetch_position, offset_fetch_errors, quick_hand_off,
                              seek_back, short_fetch_wait, track_seeks)
from .core.contacts import ContactBook
from .core.journeys import JourneyBook
from .core.queues import QueueBook
from .core.segments import fact_from_json
from .decode import BadEvent, decode
from .gc_policy import FREEZE_SECONDS, GcPolicy
from .health import Health
from .housekeeping import expire_stage
from .loophold import HoldCollector, HoldMonitor, Slicer
from .metrics import KpiCollector
from .metrics_extra import ExtraCollector
from . import offset_guard
from .offset_guard import RepeatGuard
from .topics import aiokafka_security

log = logging.getLogger("processor")
DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024  # see topics.py: the dead-letter topic accepts messages this large

TICK_SECONDS = 1.0
EXPIRE_SECONDS = 5.0        # housekeeping: often, so each pass frees little at once (docs/architecture.md#tick-timer)
IDLE_SECONDS = 5.0
COMMIT_EVERY = 100_000        # messages between offset commits, besides the 1 s interval
ADVANCE_LIMIT = 100           # records built by one QueueBook.advance call between two looks at the clock
TAKE_LIMIT = 200              # changed keys serialised by one take_dirty call between two looks at the clock
RESTORE_CHUNK = 500           # journey facts restored between two looks at the clock (see Slicer)
METADATA_MAX_AGE_MS = 15_000  # see create_app: how long a group may sit on metadata missing its topics
IDLE_COMMIT_WAIT = 5.0        # exactly_once: longest the tick leaves transactions open for acks Faust cannot commit
BATCH_MAX = 5000              # records a stage takes from its intake at most (whatever has arrived, no waiting)


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
    offset_gaps: int = 0  # offsets skipped by the consumer and read again (see create_app._mend_gaps)
    offset_repeats: int = 0  # offsets delivered again after a later one (not applied twice)
    offsets_held: int = 0  # records handed over between a rebuild and its seek (they come again)
    fetch_stalls: int = 0  # partitions sought back after Faust dropped fetched records (consumer_tuning.StallWatch)
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
    """Faust's broker credentials; the TLS context (CA, client certificate) is KafkaConfig.ssl_context()."""
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    from faust.auth import SASLCredentials, SSLCredentials

    ctx = k.ssl_context()
    if k.security_protocol == "SSL":
        return {"broker_credentials": SSLCredentials(ctx)}
    password = k.sasl_password.get_secret_value() if k.sasl_password else None
    return {"broker_credentials": SASLCredentials(
        username=k.sasl_username, password=password, mechanism=k.sasl_mechanism, ssl_context=ctx)}


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    k = settings.kafka
    short_fetch_wait()
    broker_highwaters()
    offset_fetch_errors()
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
        # Each commit waits for every record sent so far to be acknowledged (acks=all): committing
        # by time only keeps the worker from stalling on it every thousand messages during a backlog.
        broker_commit_every=COMMIT_EVERY,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        broker_session_timeout=k.session_timeout_seconds,
        table_standby_replicas=k.standby_replicas,
        broker_heartbeat_interval=k.session_timeout_seconds / 3,
        # aiokafka refreshes its metadata only this often (default 5 min) unless an error forces it. Right
        # after a broker restart a metadata response can leave out topics still loading; a rebalance
        # then assigned the whole group nothing ("Ignoring missing topic"), and nothing was read until
        # the next refresh made the group rejoin (seen in scripts/chaos_drill.py, docs/reliability.md).
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        **_kafka_security(settings),
    )
    rt = Runtime(settings, Health(), CollectorRegistry(auto_describe=True))
    gc_policy = GcPolicy()
    rt.registry.register(KpiCollector(rt, app))
    rt.registry.register(ExtraCollector(rt))
    rt.registry.register(HoldCollector(rt.holds))
    holds = rt.holds

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
    agent_ids_table = table("agent-event-ids")          # stage one: each agent's event ids within the retention
    customers_table = table("customers")                # stage one: each customer's churn event ids (retention)
    journeys_table = table("journey-facts")             # journey facts by fact id

    # One lock per stage, held for each batch and by each rebuild: Faust may call on_recover while
    # an agent is between two awaits of a batch; the rebuild then waits, and reads the tables the
    # batch has written, instead of swapping the books under it (and losing what it changed).
    locks = {"one": asyncio.Lock(), "two": asyncio.Lock(), "journeys": asyncio.Lock()}
    out = rt.output = Output(app, locks, exactly_once=k.processing_guarantee == "exactly_once", source_topic=k.input_topic)
    if out.exactly_once:
        out.stable_transaction_groups(f"{app.conf.id}-__assignor-__leader", k.partitions)  # faust LeaderAssignor's topic

    async def _mend_gaps(batch: list) -> list:
        """The batch, with what the consumer skipped read again: offsets must follow each other.

        faust-streaming 0.15 can drop a message fetched while recovery seeks to the committed
        offsets (the stream partitions are resumed before the flow, and a delivery that loses the
        race to `suspend_flow` is dropped with its offset marked read). Seen here after a restart
        under a backlog. A gap is logged, counted (kpi_input_offset_gaps_total) and mended by
        reading the missing offsets directly (a plain consumer, no group) into the batch; anything
        read twice is deduplicated downstream (event ids, fact ids). With exactly_once, offsets
        also hold transaction markers and aborted messages: a range with nothing committed in it
        is not a gap. Which offsets are applied, and why that is safe on every path: RepeatGuard.
        """
        return await offset_guard.mend(batch, rt.guard, gap_reader.read_range, _pass_empty_offsets, rt)

    gap_reader = GapReader(settings, read_committed=out.exactly_once)

    async def _pass_empty_offsets(topic: str, partition: int, start: int, end: int, found: list) -> None:
        await pass_empty_offsets(app.consumer, topic, partition, start, end, found)

    # Fetched records reach the stages a partition's fetch at a time (processor/intake.py).
    intakes = {name: intake.Intake() for name in (k.input_topic, k.facts_topic, k.journeys_topic)}
    app._kpi_intakes = intakes
    intake.patch_fetch_loop()
    intake.manage(app, intakes)  # emptied when partitions are revoked

    async def _finish_before_recovery(sender, revoked, **kwargs) -> None:
        """A rebalance begins: nothing more is applied until the seek that follows the rebuild
        (RepeatGuard.hold), and what was applied is committed now.

        Faust's recovery reads a partition this worker keeps from its changelog again, from where
        the last recovery ended to the highwater: every write since then is applied to the store
        once more. A write not in the changelog by then (a batch still running; with exactly_once,
        anything in the open transaction, which read_committed does not show) would lose its key
        to the older value while other keys of the same batch keep the newer one. After the commit
        every write is in the changelog, committed, before recovery measures the highwater."""
        for topic in (k.input_topic, k.facts_topic, k.journeys_topic):
            rt.guard.hold(topic)
        out.fenced_in_rebalance.clear()
        try:
            await out.commit_before_rebalance()
        except Exception as exc:  # noqa: BLE001 - the rebalance goes on; the guard re-applies from what is committed
            log.warning("commit before the rebalance failed: %r", exc)

    app.on_partitions_revoked.connect(_finish_before_recovery, weak=False)

    async def _take(topic: str, lock: asyncio.Lock) -> list:
        """The next records of `topic`, returned with its stage lock acquired. Records taken before a
        rebalance that happened while waiting for the lock are dropped and the next ones taken
        (Faust seeks back to the committed offsets: they come again)."""
        while True:
            batch = await intakes[topic].take(lambda: app.consumer_generation_id, BATCH_MAX)
            generation = app.consumer_generation_id  # the batch's (take drops older lists)
            await lock.acquire()
            if app.consumer_generation_id == generation:
                return batch
            lock.release()

    @app.task
    async def event_loop_holds():
        await holds.run()  # until the worker stops (cancelled)

    @app.task
    async def tune_consumer():
        quick_hand_off(app.consumer)
        if out.exactly_once:
            out.guard_fences()

    @app.task
    async def gap_reader_closer():
        try:
            await asyncio.Event().wait()  # until the worker stops (cancelled)
        finally:
            await gap_reader.close()

    def _owned_partitions(topic: str) -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}

    def _rebuilt(topic: str) -> None:
        """Recovery rebuilt the topic's books: nothing of it is applied until Faust seeks its
        partitions to their committed offsets, and from there on everything is (RepeatGuard)."""
        rt.guard.rebuilt(topic)

        def sought(committed: dict) -> None:
            rt.guard.sought(committed)
            for topic in {topic for topic, _ in committed}:
                intakes[topic].clear()  # fetched before the seek: it comes again

        track_seeks(app.consumer, {k.input_topic, k.facts_topic, k.journeys_topic}, sought)

    def route(key: str) -> int:
        """Partition of an agent's or a customer's facts: a stable hash (Python's hash() is salted)."""
        return zlib.crc32(key.encode()) % k.partitions

    # -- stage one ---------------------------------------------------------------------------
    @app.agent(events_topic, concurrency=1)
    async def stage_one(stream):
        # The agents' streams stay empty: the records come from the intakes (processor/intake.py);
        # the agents remain for Faust's subscription, assignment and transactions by topic.
        # Batches, not single events: deltas of a batch are coalesced per fact and sent as one
        # message per queue, and each touched contact is written to its table once per batch.
        while True:
            batch = await _take(k.input_topic, locks["one"])
            try:  # the lock is held (see _take)
                batch = await _mend_gaps(batch)
                # input partition -> (fact id, queue) -> fact: a fact that moves to another queue is deleted
                # from the old one and upserted in the new one, two deltas of the same id
                deltas: dict[int, dict[tuple, tuple]] = defaultdict(dict)
                not_after_ms = int((time.time() + settings.max_future_seconds) * 1000)  # wall clock: see decode()
                routed: dict[int, dict[tuple, tuple]] = defaultdict(dict)  # ... -> (fact id, topic, partition, key) -> fact
                slicer = Slicer(monitor=holds, name="stage one: events")
                for r in batch:
                    await slicer.pause()  # a long batch lets the loop run every SLICE_SECONDS (loophold.py)
                    part = r.partition
                    rt.health.observe_offset(r.topic, part, r.offset)
                    raw = r.value if r.value is not None else b""
                    try:
                        ev = decode(raw, not_after_ms)
                    except BadEvent as exc:
                        rt.health.dead_letter(exc.reason, exc.detail)
                        await out.send(dlq_topic, part, key=r.key,
                                       value=deadletter.dumps(deadletter.from_raw(exc.reason, exc.detail, raw)))
                        continue
                    book = rt.book(part)
                    res = book.ingest(ev)
                    rt.health.processed(ev.ts_ms, res.duplicate)
                    for dl in res.dead_letters:
                        rt.health.dead_letter(dl.reason, dl.detail)
                        await out.send(dlq_topic, part, key=r.key, value=deadletter.dumps(deadletter.from_core(dl)))
                    mine = deltas[part]
                    for fact_id, queue, fact in res.deltas:
                        mine[(fact_id, queue)] = fact
                    if res.agent_deltas or res.journey_deltas:  # keyed by agent / customer: explicit partitions
                        other = routed[part]
                        for fact_id, agent, fact in res.agent_deltas:
                            other[(fact_id, "facts", route(agent), agent)] = fact
                        for fact_id, customer, fact in res.journey_deltas:
                            other[(fact_id, "journeys", route(customer), customer)] = fact
                slicer.done()
                slicer = Slicer(monitor=holds, name="stage one: output")
                now = time.monotonic()
                for part, mine in deltas.items():
                    book = rt.book(part)
                    rt.last_read[part] = now
                    by_queue: dict[str, list] = defaultdict(list)
                    for (fact_id, queue), fact in mine.items():
                        await slicer.pause()
                        by_queue[queue].append(_item(fact_id, queue, fact))
                    for queue, items in by_queue.items():
                        await slicer.pause()
                        await out.send(facts_topic, part, key=queue.encode(), value={"src": part, "wm": book.stream_ms, "d": items})
                    # Agent and journey facts: one message per target partition (not per agent or customer).
                    by_target: dict[tuple[str, int], list] = defaultdict(list)
                    for (fact_id, topic, target, key), fact in routed.get(part, {}).items():
                        await slicer.pause()
                        by_target[(topic, target)].append(_item(fact_id, key, fact))
                    for (topic, target), items in sorted(by_target.items()):
                        await slicer.pause()
                        await out.send(facts_topic if topic == "facts" else journeys_topic, part, partition=target,
                                       key=b"", value={"src": part, "wm": book.stream_ms, "d": items})
                    await _persist_pair(out, book.take_dirty, contacts_table, agents_table, part, slicer)
                    await _persist_taken(out, profiles_table, book.take_dirty_profiles, part, slicer)
                    await _persist_taken(out, customers_table, book.take_dirty_customers, part, slicer)
                    await _persist_taken(out, agent_ids_table, book.take_dirty_agent_ids, part, slicer)
                slicer.done()
                await out.ack(batch)
            finally:
                locks["one"].release()

    async def _apply_facts(batch: list, book_of, name: str) -> set[int]:
        """Fact messages ({"src", "wm", "idle", "d"}) into the book of their partition; returns the partitions
        touched. Suspends every SLICE_SECONDS (a message may carry thousands of facts): the lock stays held."""
        touched: set[int] = set()
        slicer = Slicer(monitor=holds, name=name)
        for r in batch:
            part = r.partition
            rt.health.observe_offset(r.topic, part, r.offset)
            value = _json(r.value) or {}
            book = book_of(part)
            touched.add(part)
            for fact_id, fact, *route in value.get("d", ()):
                await slicer.pause()
                book.apply(fact_id, fact_from_json(fact) if fact is not None else None, *route)
            book.observe(int(value.get("wm", 0)), int(value.get("src", 0)), bool(value.get("idle")))
        slicer.done()
        return touched

    # -- stage two ---------------------------------------------------------------------------
    @app.agent(facts_topic, concurrency=1)
    async def stage_two(stream):
        while True:
            batch = await _take(k.facts_topic, locks["two"])
            try:  # the lock is held: a rebuild (on_recover) never swaps the books mid-batch
                batch = await _mend_gaps(batch)  # only what it returns is applied, so only that is acked
                touched = await _apply_facts(batch, rt.queue_book, "stage two: facts")
                slicer = Slicer(monitor=holds, name="stage two: publication")
                published = 0
                for part in sorted(touched):
                    book = rt.queue_book(part)
                    while True:  # a day close is published ADVANCE_LIMIT records at a time (QueueBook.advance)
                        with holds.step("stage two: advance"):  # (inside a publication slice: named apart)
                            records = book.advance(limit=ADVANCE_LIMIT)
                        for rec in records:
                            await slicer.pause()
                            await out.send(rollups_topic, part, key=rollup_key(rec), value=deadletter.dumps(rec))
                            rt.health.rollup_published()
                        published += len(records)
                        if not book.advancing:
                            break
                        await slicer.pause()
                if published and not out.exactly_once:
                    # The records first, then the rows that say they were published (and the facts
                    # behind them): a recovery reads the tables to their end, uncommitted writes too,
                    # and a rebuilt book publishes again only what its rows do not show as published.
                    # Handed over together, a SIGKILL could leave the rows delivered and the records
                    # not: chaos drill seed 24309, the 23:45 records of every kind lost for good.
                    # (exactly_once: one transaction holds both.)
                    await out.delivered()
                for part in sorted(touched):
                    book = rt.queue_book(part)
                    # a day close owes thousands of digests
                    await _persist_pair(out, book.take_dirty, facts_table, published_table, part, slicer)
                slicer.done()
                await out.ack(batch)
            finally:
                locks["two"].release()

    # -- journeys (keyed by customer): resolution_day, retention_day ----------------------------
    @app.agent(journeys_topic, concurrency=1)
    async def stage_journeys(stream):
        while True:
            batch = await _take(k.journeys_topic, locks["journeys"])
            try:  # the lock is held: a rebuild (on_recover) never swaps the books mid-batch
                batch = await _mend_gaps(batch)  # only what it returns is applied, so only that is acked
                touched = await _apply_facts(batch, rt.journey_book, "journeys: facts")
                slicer = Slicer(monitor=holds, name="journeys: output")
                for part in sorted(touched):
                    book = rt.journey_book(part)
                    await _send_contributions(book, part, slicer)
                    await _persist_taken(out, journeys_table, book.take_dirty, part, slicer)
                slicer.done()
                await out.ack(batch)
            finally:
                locks["journeys"].release()

    async def _send_contributions(book: JourneyBook, part: int, slicer: Slicer) -> None:
        """The journey book's contributions, by queue, to stage two; its clock as source N + partition."""
        by_queue: dict[str, list] = defaultdict(list)
        for fact_id, queue, fact in book.take_deltas():
            await slicer.pause()
            by_queue[queue].append(_item(fact_id, queue, fact))
        for queue, items in by_queue.items():
            await slicer.pause()
            await out.send(facts_topic, part, key=queue.encode(), value={"src": k.partitions + part, "wm": book.stream_ms, "d": items})

    # -- stream time for idle partitions, and housekeeping ------------------------------------
    def _nothing_to_read(src: int) -> bool:
        """True unless input partition `src` has messages the agent has not read: a partition whose
        messages are held up (a stalled fetch, see StallWatch) must keep holding the watermark back,
        or its events arrive after their intervals were closed. One offset of slack: a transaction
        marker after the last message (a transactional producer upstream) is not a message."""
        from faust.types import TP

        tp = TP(k.input_topic, src)
        try:
            end = app.consumer.highwater(tp)
        except Exception:  # not assigned (any more), not started
            return True
        handled = rt.health.offsets.get((k.input_topic, src))
        if handled is None:
            position = fetch_position(app.consumer, tp)
            handled = position - 1 if position is not None else None
        if end is None or end < 0 or handled is None:
            return True
        return end - 1 - handled <= 1

    @app.timer(TICK_SECONDS)
    async def tick():
        """Repeat each owned input partition's stream time to every stage-two partition.

        Quiet queues still close their intervals, and a partition with nothing to read is marked
        idle so that it no longer holds the watermark back. The stage locks make sure a stream time
        is never announced while the facts of the batch that reached it are still being sent.
        """
        now = time.monotonic()
        async with locks["one"]:
            t0, gc0 = time.perf_counter(), holds.gc_seconds
            for src, book in list(rt.contacts.items()):
                idle = now - rt.last_read.setdefault(src, now) >= IDLE_SECONDS and _nothing_to_read(src)
                if book.stream_ms == 0 and not idle:
                    continue  # just assigned and not read yet: say nothing rather than "time zero"
                value = {"src": src, "wm": book.stream_ms, "idle": idle, "d": []}
                for p in range(k.partitions):
                    await out.send(facts_topic, src, partition=p, key=b"", value=value)
                    await out.send(journeys_topic, src, partition=p, key=b"", value=value)
            holds.section("tick", t0, time.perf_counter(), gc0)  # (the flush below may wait for the producer)
            await out.flush_batches()
        async with locks["journeys"]:
            t0, gc0 = time.perf_counter(), holds.gc_seconds
            for part, book in list(rt.journeys.items()):
                if book.stream_ms == 0:
                    continue  # no clock yet (not every input partition has reported to it)
                for p in range(k.partitions):
                    await out.send(facts_topic, part, partition=p, key=b"", value={"src": k.partitions + part, "wm": book.stream_ms, "d": []})
            holds.section("tick", t0, time.perf_counter(), gc0)
            await out.flush_batches()
        await out.commit_idle()  # exactly_once: ticks of partitions with nothing new to commit are committed too

    if settings.redis_url is not None:  # the live snapshot for the wallboard (processor/snapshot.py)
        from .snapshot import SNAPSHOT_SECONDS, RedisSnapshot
        snap = rt.snapshot = RedisSnapshot(settings.redis_url.get_secret_value())

        @app.timer(SNAPSHOT_SECONDS)
        async def redis_snapshot():
            with holds.step("redis snapshot"):
                snap.offer(rt.queues)  # computes only; a background task writes, never blocking this

        @app.task
        async def redis_snapshot_writer():
            await snap.run()  # until the worker stops (cancelled), then closes the connection

    @app.timer(EXPIRE_SECONDS)
    async def housekeeping():
        # Expiry only marks keys dirty; they are deleted from the tables by the next batch of the stage.
        # In slices that release the stage's lock and the loop (processor/housekeeping.py); a slow one
        # is logged by the hold monitor.
        await expire_stage("one", locks["one"], lambda: rt.contacts, holds)
        await expire_stage("two", locks["two"], lambda: rt.queues, holds)
        await expire_stage("journeys", locks["journeys"], lambda: rt.journeys, holds)

    stall_watch = StallWatch()

    @app.timer(TICK_SECONDS)
    async def resume_stalled_fetches():
        """Seek back a partition whose fetched records Faust dropped (consumer_tuning.StallWatch)."""
        consumer = app.consumer
        if app.rebalancing or not consumer.flow_active:
            return
        owned = {tp for tp in app.assignor.assigned_actives()
                 if tp.topic in (k.input_topic, k.facts_topic, k.journeys_topic)}
        stall_watch.forget(owned)
        if any(each.full() for each in intakes.values()):
            # The fetch loop waits for room in a full intake, and holds what it fetched for every
            # partition behind it (of any topic) until then: that is not a dropped fetch. Seeking
            # then only read those records twice (seen in a steady-state soak: the facts partitions
            # sought back while the input topic's intake was full, an ERROR line each).
            return
        for tp in sorted(owned):
            delivered = consumer._read_offset.get(tp)
            position = fetch_position(consumer, tp)
            offset = stall_watch.check(tp, position, delivered, rt.health.offsets.get((tp.topic, tp.partition)))
            if offset is not None:
                if out.exactly_once and not await gap_reader.read(tp.topic, tp.partition, offset, position):
                    continue  # only transaction markers (or aborted records) in between: nothing was dropped
                rt.fetch_stalls += 1
                log.error("%s[%d]: fetched up to %s but delivered only up to %s: seeking back to %d",
                          tp.topic, tp.partition, position, delivered, offset)
                await seek_back(consumer, tp, offset)  # in the consumer's thread (fault I)

    @app.timer(FREEZE_SECONDS)
    async def garbage_collection():
        with holds.step("garbage collection"):
            gc_policy.tick()  # long-lived state out of the cycle collector's way (processor/gc_policy.py)

    # -- recovery: rebuild the books from the tables for exactly the partitions we own ----------
    @contacts_table.on_recover
    async def _recover_stage_one():
        async with locks["one"]:
            slicer = Slicer(monitor=holds, name="restore (one)")  # rows restored in slices: the lock stays held
            _rebuilt(k.input_topic)
            owned = _owned_partitions(k.input_topic)
            books = {p: ContactBook(engine) for p in owned}
            for cid, book, state in _owned_rows(contacts_table, books):
                await slicer.pause()
                book.restore_contact(cid, state)
            for aid, book, state in _owned_rows(agents_table, books):  # before their event ids
                await slicer.pause()
                book.restore_agent(aid, state)
            for cid, book, state in _owned_rows(profiles_table, books):
                await slicer.pause()
                if cid not in book.contacts:
                    book.restore_profile(cid, state)
            for key, book, value in _owned_rows(agent_ids_table, books):
                await slicer.pause()
                book.restore_agent_id(key, value)
            for customer, book, state in _owned_rows(customers_table, books):
                await slicer.pause()
                book.restore_customer(customer, state)
            rt.contacts = books
            now = time.monotonic()
            rt.last_read = {p: rt.last_read.get(p, now) for p in owned}
            slicer.done()
            log.info("stage one rebuilt: %d contacts, %d agents, partitions %s",
                     sum(len(b.contacts) for b in books.values()), sum(len(b.agents) for b in books.values()), sorted(owned))

    @facts_table.on_recover
    async def _recover_stage_two():
        async with locks["two"]:
            slicer = Slicer(monitor=holds, name="restore (two)")  # rows restored in slices: the lock stays held
            _rebuilt(k.facts_topic)
            owned = _owned_partitions(k.facts_topic)
            books = {p: _queue_book(engine, k.partitions) for p in owned}
            for fid, book, fact in _owned_rows(facts_table, books):
                await slicer.pause()
                book.restore_fact(fid, fact)
            for key, book, value in _owned_rows(published_table, books):
                await slicer.pause()
                book.restore_published(key, value)
            _keep_clocks(books, rt.queues)
            rt.queues = books
            slicer.done()
            log.info("stage two rebuilt: %d facts, partitions %s",
                     sum(len(b.facts) for b in books.values()), sorted(owned))

    @journeys_table.on_recover
    async def _recover_journeys():
        async with locks["journeys"]:
            slicer = Slicer(monitor=holds, name="restore (journeys)")  # rows restored in slices: the lock stays held
            _rebuilt(k.journeys_topic)
            owned = _owned_partitions(k.journeys_topic)
            books = {p: _journey_book(engine, k.partitions) for p in owned}
            stored: dict[int, list] = defaultdict(list)
            for fid, p, fact in _rows(journeys_table, books):
                await slicer.pause()
                stored[p].append((fid, fact))
            for p, facts in stored.items():
                for i in range(0, len(facts), RESTORE_CHUNK):
                    books[p].restore(facts[i:i + RESTORE_CHUNK])
                    await slicer.pause()
            _keep_clocks(books, rt.journeys)
            rt.journeys = books
            slicer.done()
            log.info("journeys rebuilt: %d facts, partitions %s",
                     sum(len(b.facts) for b in books.values()), sorted(owned))

    @app.page("/metrics")
    async def metrics(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition type goes in as a header.
        with holds.step("/metrics"):
            body = generate_latest(rt.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"status": "ok", "stream_time_ms": rt.stream_ms, "watermark_ms": rt.watermark_ms,
                         "uptime_seconds": round(time.monotonic() - rt.health.started, 1)})

    app.kpi_runtime = rt  # for tests and the CLI
    return app, rt


async def pass_empty_offsets(consumer, topic: str, partition: int, start: int, end: int, found: list) -> None:
    """Offsets of [start, end) read again without a record (transaction markers, aborted records) are
    a gap Faust's commits pass, as its fetch loop records the jumps it sees. Without that, after the
    consumer had skipped a range holding markers (create_app._mend_gaps), the offsets acked had holes
    Faust never commits past: no offset of that partition was committed again (exactly_once: seen
    in the chaos drill, seed 12007, after "offsets ... were skipped by the consumer")."""
    from aiokafka.structs import TopicPartition

    tp, have, first = TopicPartition(topic, partition), {m.offset for m in found}, None
    for offset in range(start, end + 1):
        if offset < end and offset not in have:
            first = offset if first is None else first
        elif first is not None:
            await consumer._add_gap(tp, first, offset - 1)
            first = None


def _owned_rows(table, books: dict):
    """(key, book, value) of a table's entries that belong to a partition in `books` (values carry it)."""
    for key, p, value in _rows(table, books):
        yield key, books[p], value


def _rows(table, owned):
    """(key, partition, value) of a table's entries of the partitions in `owned`. A memory store holds
    rows as the JSON bytes of their changelog records under (partition, key) (see PartitionTable):
    only owned ones are decoded."""
    # A memory store's rows are copied first (a C-speed copy): the rebuild suspends between rows, and
    # standby changelog records may be written into the same store meanwhile.
    rows = list(table.data.data.items()) if isinstance(table, PartitionTable) and table.keeps_bytes() else table.items()
    for key, row in rows:
        if isinstance(row, bytes):
            key = key[1]
            if _row_partition(row) not in owned:
                continue
            row = orjson.loads(row)
        p, value = row
        if p in owned and value is not None:
            yield key, p, value


def _row_partition(raw: bytes) -> int:
    """The partition of a row's JSON bytes, `[p,value]`, without decoding the value."""
    return int(raw[1:raw.index(b",")])


def _keep_clocks(books: dict, old_books: dict) -> None:
    """A partition kept through a rebalance keeps its clock (sources heard, stream time) in the rebuilt book."""
    for p, book in books.items():
        old = old_books.get(p)
        if old is not None:
            book.sources, book.heard = dict(old.sources), set(old.heard)
            book.stream_ms, book.latest_ms = old.stream_ms, old.latest_ms


def _json(raw: bytes | None):
    return orjson.loads(raw) if raw else None


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


class GapReader:
    """A plain consumer (no group) that reads given offset ranges again: see create_app._mend_gaps.

    Started on first use and kept: with exactly_once every commit leaves a transaction marker in
    the partitions it wrote, so most batches start after a "gap" that holds nothing to read.
    """

    def __init__(self, settings: Settings, *, read_committed: bool) -> None:
        self.settings, self.read_committed = settings, read_committed
        self._consumer = None
        self._lock = asyncio.Lock()  # one consumer, three stages: one range at a time

    async def read(self, topic: str, partition: int, start: int, end: int) -> list:
        """The records of offsets [start, end) (committed ones only with exactly_once)."""
        return (await self.read_range(topic, partition, start, end))[0]

    async def read_range(self, topic: str, partition: int, start: int, end: int) -> tuple[list, bool]:
        """The records of offsets [start, end), and whether the reader got to `end` (within 30 s)."""
        from aiokafka.structs import TopicPartition

        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            found = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and await consumer.position(tp) < end:
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if start <= r.offset < end:
                        found.append(r)
            return found, await consumer.position(tp) >= end

    async def _started(self):
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka.bootstrap, group_id=None, enable_auto_commit=False,
                isolation_level="read_committed" if self.read_committed else "read_uncommitted",
                **aiokafka_security(self.settings))
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


class Output:
    """Every message a stage sends, and (exactly_once) the transactions they belong to.

    Faust picks a message's transaction by its destination partition, so a fact sent by input
    partition 0 to the facts partition of its queue would commit with that partition's offsets, or
    find no producer when another worker owns it, and a timer has no transaction at all. Here a
    message goes in the transaction of the partition whose input caused it (Faust opens one per
    owned partition of the co-partitioned group: input, facts, journeys and changelogs share it),
    and a commit waits for the batch in progress, so offsets, table writes and outputs commit
    together. A transaction with only clock ticks is committed on the next tick.
    """

    def __init__(self, app: faust.App, locks: dict[str, asyncio.Lock], *, exactly_once: bool, source_topic: str) -> None:
        self.app, self.locks, self.exactly_once, self.source_topic = app, locks, exactly_once, source_topic
        self.open: set[str] = set()  # transactional ids with messages not committed yet
        from aiokafka.partitioner import DefaultPartitioner
        self._partitioner, self._partitions = DefaultPartitioner(), list(range(app.conf.topic_partitions))
        self._guarded = False
        self.failed: BaseException | None = None  # the first record the producer could not deliver
        self._batches: dict[tuple, object] = {}  # (transactional id, topic, partition) -> aiokafka BatchBuilder
        # Batches handed to the producer and not acknowledged yet. A stage is done with its input
        # once it has handed its output over: after a backlog the producer may still hold seconds of
        # table writes, and whatever comes next waits behind them.
        self.in_flight = 0
        self._unacked: set = set()  # their futures (see delivered)
        self.fenced_in_rebalance: set[str] = set()  # exactly_once: see guard_fences
        self.acked_uncommitted = False  # exactly_once: offsets acked since a commit last took them (commit_idle)
        self._idle_skipped_since: float | None = None  # commit_idle: when it first left them to Faust's commit

    def stable_transaction_groups(self, leader_topic: str, partitions: int) -> None:
        """exactly_once: transactional ids that stay the same from one rebalance to the next.

        Faust names a partition's transactional id after the assignor's number for its topic group,
        `{app}-{group}-{partition}`, and numbers the groups by partition count in each rebalance:
        the assignor's own one-partition topic is group 0 and the co-partitioned topics group 1 -
        unless the leader's metadata lacks that topic (the first rebalance of a new app, a rebalance
        right after a broker restart), when they are group 0. Seen in the chaos drill: the ids
        changed between rebalances, so a new owner's producer no longer fenced the open
        transaction of a killed worker; that transaction held the last stable offset of its
        partitions until it timed out, and recovery with read_committed rebuilt books without the
        changelog behind it (impossible_order dead letters, wrong records, versions published
        twice). Here the numbers are Faust's steady ones, whatever the metadata says."""
        main = 1 if partitions > 1 else 0

        def group_for_topic(topic: str) -> int:
            return 0 if topic == leader_topic else main

        self.app.assignor.group_for_topic = group_for_topic

    def transactional_id(self, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(self.source_topic)}-{partition}"

    async def send(self, topic, src: int, *, key: bytes, value, partition: int | None = None) -> None:
        """`value` on `topic` (by `key`, or to `partition`), caused by input of partition `src`."""
        data = value if isinstance(value, bytes) else _dumps(value)
        await self.send_record(topic.get_topic_name(), src, key, data, partition)

    async def send_record(self, topic: str, src: int, key: bytes, data: bytes | None, partition: int | None = None) -> None:
        """One serialized record, collected into a record batch of its partition (and transaction).

        Faust's per-message path (FutureMessage, producer buffer, codecs, one delivery future and
        callback per message) cost more than everything else a batch does
        (docs/architecture.md#records-leave-in-batches-not-one-by-one); the batches go to the
        producer whole, at the latest when the stage acks its input (`ack`)."""
        if partition is None:  # the producer's default partitioner: where Faust's topic.send put it
            partition = self._partitioner(key, self._partitions, self._partitions)
        tid = None
        if self.exactly_once:
            self._guard_commits()
            tid = self.transactional_id(src)
            self.open.add(tid)
        elif not self._guarded:
            self._guard_flush()
        slot = (tid, topic, partition)
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = self._producer(tid).create_batch()
        if batch.append(timestamp=None, key=key, value=data) is not None:
            return
        del self._batches[slot]  # full: to the producer, and a new one (another stage may have begun it meanwhile)
        await self._submit(slot, batch)
        batch = self._batches.get(slot)
        if batch is None:
            batch = self._batches[slot] = self._producer(tid).create_batch()
        if batch.append(timestamp=None, key=key, value=data) is None:  # larger than a batch on its own
            fut = await self._producer(tid).send(topic, data, key=key, partition=partition)
            self.in_flight += 1
            self._unacked.add(fut)
            fut.add_done_callback(self._delivered)

    async def delivered(self) -> None:
        """Every record sent so far acknowledged by the broker; raises if one was not delivered."""
        await self.flush_batches()
        waiting = list(self._unacked)
        if waiting:
            await asyncio.wait(waiting)
        if self.failed is not None:
            from faust.exceptions import ProducerSendError
            raise ProducerSendError(f"a record was not delivered: {self.failed!r}")

    async def flush_batches(self) -> None:
        """Hand every collected record batch to the producer."""
        batches, self._batches = self._batches, {}
        for slot, batch in batches.items():
            await self._submit(slot, batch)

    async def _submit(self, slot: tuple, batch) -> None:
        tid, topic, partition = slot
        batch.close()  # nothing else may join it once submitted
        fut = await self._producer(tid).send_batch(batch, topic, partition=partition)
        self.in_flight += 1
        self._unacked.add(fut)
        fut.add_done_callback(self._delivered)

    def _producer(self, tid: str | None):
        """The aiokafka producer behind Faust's: its transactional one for `tid`."""
        producer = self.app.producer
        if tid is None:
            return producer._ensure_producer()
        try:
            return producer._transaction_producers[tid]
        except KeyError:
            from faust.exceptions import ProducerSendError
            raise ProducerSendError(f"No transaction producer found for : {tid}") from None

    def _delivered(self, fut) -> None:
        self.in_flight -= 1
        self._unacked.discard(fut)
        if not fut.cancelled() and fut.exception() is not None and self.failed is None:
            self.failed = fut.exception()
            log.error("a record was not delivered: %r; no offset is committed after it", self.failed)

    def _guard_flush(self) -> None:
        """at_least_once: Faust flushes the producer before it commits offsets; a record that was not
        delivered makes that flush fail, so the offsets of the input that caused it stay uncommitted."""
        if self._guarded:
            return
        producer = self.app.producer
        flush = producer.flush

        async def checked_flush() -> None:
            await flush()
            if self.failed is not None:
                from faust.exceptions import ProducerSendError
                raise ProducerSendError(f"a record was not delivered: {self.failed!r}")

        producer.flush = checked_flush
        self._guarded = True

    def _guard_commits(self) -> None:
        """Make Faust's commits wait for the batch in progress and carry the table writes and ticks too."""
        if self._guarded:
            return
        consumer = self.app.consumer
        manager = consumer.transactions
        commit, end = manager.commit, consumer.commit_and_end_transactions

        async def guarded_commit(offsets, start_new_transaction: bool = True) -> bool:
            async with self.locks["one"], self.locks["two"], self.locks["journeys"]:
                self._add_acked_meanwhile(offsets)
                await self.flush_batches()
                await self.app.producer.flush()  # what Faust still buffers joins the transaction
                done = await commit(offsets, start_new_transaction=start_new_transaction)
                self.open -= {self.transactional_id(tp.partition) for tp in offsets}
                await self._commit_open(begin=start_new_transaction)
                return done

        async def commit_and_end() -> None:  # the worker stops: nothing sent is left uncommitted
            await end()
            async with self.locks["one"], self.locks["two"], self.locks["journeys"]:
                await self.flush_batches()
                await self.app.producer.flush()
                await self._commit_open(begin=False)

        manager.commit = guarded_commit
        consumer.commit_and_end_transactions = commit_and_end
        self._guarded = True

    def _add_acked_meanwhile(self, offsets: dict) -> None:
        """The offsets acked while the guarded commit waited for the batch in progress, into `offsets`
        (fault H, docs/reliability.md).

        Faust computes `offsets` (and takes them off its acked lists), then its commit waits here for
        the batch in progress, whose outputs and table writes join the transaction: without its
        offsets, a restart or a rebalance applied that batch again, and what no id deduplicates (a
        dead letter of a message that is not an event) was committed twice. The dict is Faust's own
        and is updated in place: after the commit Faust records it as the committed offsets, and
        its next commit starts from there. (A copy committed higher offsets while Faust recorded the
        lower ones; its acked lists then began more than one offset above its committed offset, so it
        never committed that partition again: the drill stalled, cb94a7f.) Faust would take the
        later acks only from its committed offset, so it is set to `offsets` while they are taken."""
        consumer = self.app.consumer
        self.acked_uncommitted, self._idle_skipped_since = False, None  # every ack so far is taken into account here
        assigned = consumer.assignment()
        tps = [tp for tp, acked in list(consumer._acked.items()) if acked and tp in assigned]
        if not tps:
            return
        committed = consumer._committed_offset
        before = {tp: committed[tp] for tp in offsets}
        committed.update(offsets)  # what Faust records once this commit is done
        try:
            later = consumer._filter_committable_offsets(tps)
        finally:
            committed.update(before)
        for tp, offset in later.items():
            if offset > (offsets.get(tp) or -1):
                offsets[tp] = offset

    def guard_fences(self) -> None:
        """exactly_once: a fenced transactional producer stops the worker (issue 24's chaos drill).

        faust-streaming's begin/commit/abort_transaction catch ProducerFenced, log it at INFO, drop
        the producer and go on. The worker then kept books holding the effects of the transaction
        the broker aborted, and went on reading after them: a zombie beside the partition's new
        owner. A fence means another worker owns the partition now; as Kafka Streams does with a
        migrated task, the worker stops (Faust's crash) and starts again from what was committed.
        In a rebalance a fence is the normal hand-over of a partition that moves to another worker
        (the commit at its start begins new transactions): the worker stops only if that partition
        is assigned to it again (Faust begins its transaction then)."""
        producer = self.app.producer
        if getattr(producer, "_kpi_fence_guarded", False):
            return
        from aiokafka.errors import ProducerFenced
        fenced = self.fenced_in_rebalance

        async def stop(transactional_id: str) -> None:
            log.error("transactional producer %s was fenced: stopping the worker", transactional_id)
            exc = ProducerFenced()
            await self.app.crash(exc)
            raise exc

        def checked(name: str, method):
            async def call(transactional_id: str) -> None:
                if transactional_id in fenced and name == "begin_transaction":
                    await stop(transactional_id)  # assigned again after its producer was fenced
                had = transactional_id in producer._transaction_producers
                await method(transactional_id)
                if had and transactional_id not in producer._transaction_producers:  # Faust dropped it: fenced
                    if self.app.rebalancing:
                        log.info("transactional producer %s fenced in a rebalance: its partition moved",
                                 transactional_id)
                        fenced.add(transactional_id)
                    else:
                        await stop(transactional_id)
            return call

        for name in ("begin_transaction", "commit_transaction", "abort_transaction"):
            setattr(producer, name, checked(name, getattr(producer, name)))
        producer._kpi_fence_guarded = True

    async def _commit_open(self, *, begin: bool = True) -> None:
        producer = self.app.producer
        for tid in sorted(self.open):
            try:
                await producer.commit_transaction(tid)
                if begin:
                    await producer.begin_transaction(tid)
            except KeyError:  # its partition was revoked meanwhile: the new owner redoes that work
                log.info("transaction %s ended with its partition", tid)
        self.open.clear()

    async def commit_before_rebalance(self) -> None:
        """A rebalance begins, the stages held: the batch in progress ends (and acks its offsets), then
        Faust's commit commits what was applied (exactly_once: with the open transactions).

        Faust's commit computes the offsets to commit from the acks, and with none (the batch in
        progress had not acked yet) it commits nothing: it never reaches the guarded commit, which
        would have waited for that batch. The open transaction, holding the batch's outputs and table
        writes, then outlived the rebalance; the memory store kept the batch's rows, the seek went
        back to the older committed offset, and the batch was applied again into the same
        transaction: chaos drill seed 28001 (exactly_once), a dead letter sent twice in one
        transaction 5 s apart, across a rebalance. A batch that takes its lock after the hold
        applies nothing (RepeatGuard), so after this wait every applied offset is acked."""
        async with self.locks["one"], self.locks["two"], self.locks["journeys"]:
            if not self.exactly_once:  # at_least_once: its records handed over before Faust's flush
                await self.flush_batches()
        await self.app.consumer.commit()

    async def commit_idle(self) -> None:
        """exactly_once: commit what was read (Faust's commit, guarded), then transactions holding only ticks."""
        if not self.exactly_once or not self.open:
            return
        await self.app.consumer.commit()
        if self.open:
            async with self.locks["one"], self.locks["two"], self.locks["journeys"]:
                if self.acked_uncommitted:
                    # A batch ended while this waited for the locks: its outputs are in the open
                    # transactions, its offsets are not committed yet. Committing the transactions
                    # now would commit the outputs without them (fault H); Faust's next commit
                    # (within broker_commit_interval) carries both, and every open transaction.
                    # Offsets Faust cannot commit (acked behind one that is not) must not hold the
                    # transactions open for good (read_committed readers would wait behind them):
                    # after IDLE_COMMIT_WAIT the transactions are committed without them.
                    now = time.monotonic()
                    self._idle_skipped_since = self._idle_skipped_since or now
                    if now - self._idle_skipped_since < IDLE_COMMIT_WAIT:
                        return
                    log.warning("offsets acked %.0f s ago are not committable yet: committing the open "
                                "transactions without them", now - self._idle_skipped_since)
                self._idle_skipped_since = None
                await self.flush_batches()
                await self.app.producer.flush()
                await self._commit_open()

    async def ack(self, batch: list) -> None:
        """Submit a batch's records, then mark its offsets committable, while its stage lock is held:
        a commit then carries either the whole batch (offsets and outputs) or none of it."""
        await self.flush_batches()
        if batch and intake.ack(self.app.consumer, batch):
            self.acked_uncommitted = True


class PartitionTable(faust.Table):
    """A table whose writes name their changelog partition, and whose memory store keeps bytes.

    Faust takes the partition from the event being processed; an agent that handles a batch
    spanning several partitions must say which partition each key belongs to.

    Faust's memory store keeps each row decoded, a second copy of the books' state as Python
    objects (lists, dicts, strings): the worker's memory was about twice that of the same feed
    through the core alone. Here it keeps the row's changelog record, the JSON bytes
    `[partition, value]`: what `_persist` sends, and what recovery and standby replicas read.
    Rows are decoded only when the books are rebuilt (`_rows`). The RocksDB store keeps bytes anyway.

    A row is stored under (partition, key), not under its key alone (issue 24): the same key can
    live in two partitions at once, e.g. the contribution `rs|<contact>` moving from queue `none`
    (facts partition 0) to its real queue (partition 2) is a delete in changelog partition 0 and an
    insert in partition 2. Keyed by the key alone, the delete removed the live row whichever came
    second, live or in recovery (whose order across partitions is arbitrary). Keyed by partition,
    each changelog partition rebuilds its own rows only: the result cannot depend on the order in
    which partitions are read. The changelog records are unchanged (the partition is the record's).
    """

    _write_partition: int | None = None

    def keeps_bytes(self) -> bool:
        return type(self.data) is MemoryStore

    def apply_changelog_batch(self, batch) -> None:
        """Changelog events (Faust's per-message recovery path) into the store: as their bytes in a memory store."""
        if not self.keeps_bytes():
            return super().apply_changelog_batch(batch)
        self._keep_rows((self._to_key(event.key), event.message.value, event.message.partition) for event in batch)

    def apply_changelog_records(self, records: list) -> None:
        """Fetched changelog records, undecoded (intake.changelog_records): keys are JSON, as Faust's
        table key serializer writes them; values are kept as they are."""
        to_key, loads = self._to_key, orjson.loads
        self._keep_rows((to_key(loads(r.key)), r.value, r.partition) for r in records)

    def _keep_rows(self, rows_in) -> None:
        store = self.data
        rows, partitions = store.data, store._key_partition
        for key, value, partition in rows_in:
            at = (partition, key)
            if value is None:
                rows.pop(at, None)
                partitions.pop(at, None)
            else:
                rows[at] = bytes(value)
                partitions[at] = partition  # Faust's memory store drops rows of partitions not assigned any more

    def put_row(self, partition: int, key, row) -> None:
        """A live write of `key`'s row in `partition` (bytes in a memory store, `[partition, value]` otherwise)."""
        store = self.data
        if self.keeps_bytes():
            at = (partition, key)
            store.data[at] = row
            store._key_partition[at] = partition
            return
        self._write_partition = partition  # the RocksDB store writes to that partition's database
        try:
            store[key] = row
        finally:
            self._write_partition = None

    def delete_row(self, partition: int, key) -> bool:
        """Delete `key`'s row in `partition` only (the same key in another partition is another row);
        False when there was none."""
        store = self.data
        if self.keeps_bytes():
            at = (partition, key)
            if store.data.pop(at, None) is None:
                return False
            store._key_partition.pop(at, None)
            return True
        return store.delete_in(partition, key)

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

        def delete_in(self, partition: int, key) -> bool:
            """Delete `key` from that partition's database only (Faust's delete removes it from all)."""
            raw = self._encode_key(key)
            db = self._db_for_partition(partition)
            if db.get(raw) is None:
                return False
            db.delete(raw)
            if self._key_index.get(raw) == partition:
                del self._key_index[raw]
            return True

    return PartitionRocksDBStore


async def _persist(out: Output, table: PartitionTable, dirty: dict, partition: int, slicer: Slicer | None = None) -> None:
    """A batch's changed keys into the table's store, and their changelog records to `partition`.

    The records are sent as plain producer records rather than through Faust's table writes (one
    FutureMessage each, the largest cost of a batch); Faust's recovery reads them like its own."""
    if not dirty:
        return
    topic = table.changelog_topic.get_topic_name()
    keeps_bytes = table.keeps_bytes()
    for key, value in dirty.items():
        if slicer is not None:
            await slicer.pause()
        if value is None:
            if table.delete_row(partition, key):  # this partition's row only (see PartitionTable)
                await out.send_record(topic, partition, _dumps(key), None, partition)
        else:
            row = [partition, value]
            data = _dumps(row)
            # orjson's result keeps its whole write buffer (about 4 KiB whatever the length): a
            # row kept in the store is an exact-size copy.
            table.put_row(partition, key, bytes(memoryview(data)) if keeps_bytes else row)
            await out.send_record(topic, partition, _dumps(key), data, partition)


async def _persist_taken(out: Output, table: PartitionTable, take, partition: int, slicer: Slicer) -> None:
    """`take(limit)` (a book's take_dirty…) called again and again, TAKE_LIMIT keys at a time, each part
    persisted (see _persist): serialising every key a batch changed at once held the loop too long."""
    while True:
        dirty = take(TAKE_LIMIT)
        await _persist(out, table, dirty, partition, slicer)
        if len(dirty) < TAKE_LIMIT:
            return
        await slicer.pause()


async def _persist_pair(out: Output, take, first: PartitionTable, second: PartitionTable, partition: int,
                        slicer: Slicer) -> None:
    """As _persist_taken, for a book whose `take_dirty(limit)` returns two kinds of keys at once."""
    while True:
        dirty_first, dirty_second = take(TAKE_LIMIT)
        await _persist(out, first, dirty_first, partition, slicer)
        await _persist(out, second, dirty_second, partition, slicer)
        if len(dirty_first) + len(dirty_second) < TAKE_LIMIT:
            return
        await slicer.pause()


def _dumps(value) -> bytes:
    """Compact JSON (orjson: a third of the worker's serializing time; no NaN or infinity in state)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)

