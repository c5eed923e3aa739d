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


@dataclass
class Runtime:
    """Everything the agents share inside one worker process."""

    settings: Settings
    contacts: ContactBook
    queues: QueueBook
    health: Health
    registry: CollectorRegistry
    stage_one_partitions: set[int] = field(default_factory=set)
    stage_two_partitions: set[int] = field(default_factory=set)


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
        **_kafka_security(settings),
    )
    rt = Runtime(settings, ContactBook(engine), QueueBook(engine), Health(), CollectorRegistry(auto_describe=True))
    rt.registry.register(KpiCollector(rt, app))

    events_topic = app.topic(k.input_topic, partitions=k.partitions, value_serializer="raw")
    facts_topic = app.topic(k.facts_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                            internal=True)
    rollups_topic = app.topic(k.rollup_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(k.dead_letter_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw")

    table_opts = dict(partitions=k.partitions)  # keys and values are JSON (Faust default for tables)
    contacts_table = app.Table("contacts", **table_opts)
    agents_table = app.Table("agents", **table_opts)
    facts_table = app.Table("queue-facts", **table_opts)
    published_table = app.Table("published", **table_opts)

    # -- stage one ---------------------------------------------------------------------------
    @app.agent(events_topic, concurrency=1)
    async def stage_one(stream):
        async for event in stream.events():
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
            res = rt.contacts.ingest(ev)
            rt.health.processed(ev.ts_ms, res.duplicate)
            for dl in res.dead_letters:
                rt.health.dead_letter(dl.reason, dl.detail)
                await dlq_topic.send(key=msg.key, value=deadletter.dumps(deadletter.from_core(dl)))
            if res.deltas:
                by_queue: dict[str, list] = defaultdict(list)
                for fact_id, queue, fact in res.deltas:
                    by_queue[queue].append([fact_id, list(fact) if fact is not None else None])
                for queue, deltas in by_queue.items():
                    await facts_topic.send(key=queue.encode(), value={"wm": rt.contacts.stream_ms, "d": deltas})
            dirty_contacts, dirty_agents = rt.contacts.take_dirty()
            _persist(contacts_table, dirty_contacts, part)
            _persist(agents_table, dirty_agents, part)

    # -- stage two ---------------------------------------------------------------------------
    @app.agent(facts_topic, concurrency=1)
    async def stage_two(stream):
        async for event in stream.events():
            msg = event.message
            part = msg.partition
            rt.health.observe_offset(msg.topic, part, msg.offset)
            value = event.value or {}
            for fact_id, fact in value.get("d", ()):
                rt.queues.apply(fact_id, tuple(fact) if fact is not None else None)
            rt.queues.observe(int(value.get("wm", 0)))
            for rec in rt.queues.advance():
                key = f"{rec['queue_id']}|{rec['channel']}|{rec['interval_start']}".encode()
                await rollups_topic.send(key=key, value=deadletter.dumps(rec))
                rt.health.rollup_published()
            dirty_facts, dirty_published = rt.queues.take_dirty()
            _persist(facts_table, dirty_facts, part)
            _persist(published_table, dirty_published, part)

    # -- stream time for idle partitions, and housekeeping ------------------------------------
    @app.timer(TICK_SECONDS)
    async def tick():
        """Carry stage-one stream time to every stage-two partition, so quiet queues still close intervals."""
        if not rt.stage_one_partitions or rt.contacts.stream_ms == 0:
            return
        for p in range(k.partitions):
            await facts_topic.send(partition=p, key=b"", value={"wm": rt.contacts.stream_ms, "d": []})

    @app.timer(EXPIRE_SECONDS)
    async def housekeeping():
        # Expiry only marks keys dirty; they are deleted from the tables by the next event of the stage.
        rt.contacts.expire()
        rt.queues.expire()

    # -- recovery: rebuild the books from the tables for exactly the partitions we own ----------
    @contacts_table.on_recover
    async def _recover_stage_one():
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.input_topic}
        rt.stage_one_partitions = owned
        book = ContactBook(engine)
        for cid, (p, state) in contacts_table.items():
            if p in owned and state is not None:
                book.restore_contact(cid, state)
        for aid, (p, state) in agents_table.items():
            if p in owned and state is not None:
                book.restore_agent(aid, state)
        rt.contacts = book
        log.info("stage one rebuilt: %d contacts, %d agents, partitions %s", len(book.contacts), len(book.agents), sorted(owned))

    @facts_table.on_recover
    async def _recover_stage_two():
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == k.facts_topic}
        rt.stage_two_partitions = owned
        book = QueueBook(engine)
        for fid, (p, fact) in facts_table.items():
            if p in owned and fact is not None:
                book.restore_fact(fid, fact)
        for key, (p, value) in published_table.items():
            if p in owned and value is not None:
                book.restore_published(key, value)
        book.observe(rt.queues.stream_ms)
        rt.queues = book
        log.info("stage two rebuilt: %d facts, queues %s, partitions %s", len(book.facts), book.queues(), sorted(owned))

    @app.page("/metrics")
    async def metrics(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition type goes in as a header.
        return web.bytes(generate_latest(rt.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(web, request):
        return web.json({"status": "ok", "stream_time_ms": rt.contacts.stream_ms,
                         "uptime_seconds": round(time.monotonic() - rt.health.started, 1)})

    app.kpi_runtime = rt  # for tests and the CLI
    return app, rt


def _persist(table, dirty: dict, partition: int) -> None:
    for key, value in dirty.items():
        if value is None:
            if key in table:
                del table[key]
        else:
            table[key] = [partition, value]
