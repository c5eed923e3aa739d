"""The Faust application: a thin shell that moves bytes between Kafka, the core books and tables.

This module declares the app, its topics and tables, and wires the parts of worker/ together
(each gets the `Worker` context, worker/runtime.py):
  stages.py        the three agents (stage_one, stage_journeys, stage_two)
  clock.py         the tick: stream time to idle partitions
  housekeeping.py  expiry in slices; the garbage-collection timer
  recovery.py      the books rebuilt from the tables after every rebalance
  tables.py        PartitionTable, its stores, and what a batch persists
  output.py        Output: record batches and transactions
  offsets.py       gap mending, the stall watch, the lag
  intake.py        fetched records handed to the stages in lists
  web.py           /metrics and /healthz;  health.py  the worker's own counts
  patches.py       every change to Faust's and aiokafka's private attributes
Agent and timer names are given explicitly: the names Faust gave them when they were all defined
in one function of processor/app.py (they appear in Faust's logs).
"""
from __future__ import annotations

import asyncio

import faust
from prometheus_client import CollectorRegistry

from ..config import Settings
from ..gc_policy import GcPolicy
from ..loophold import HoldCollector
from ..metrics import OutcomeCollector, QueueCollector, RedisCollector, WorkerCollector
from ..topics import faust_credentials
from . import clock, housekeeping, intake, offsets, patches, recovery, stages, web
from .health import Health
from .output import Output
from .runtime import Runtime, Topics, Worker
from .tables import add_tables

DEAD_LETTER_MAX_BYTES = 8 * 1024 * 1024  # see topics.py: the dead-letter topic accepts messages this large
COMMIT_EVERY = 100_000        # messages between offset commits, besides the 1 s interval
METADATA_MAX_AGE_MS = 15_000  # see create_app: how long a group may sit on metadata missing its topics


def create_app(settings: Settings) -> tuple[faust.App, Runtime]:
    k = settings.kafka
    patches.short_fetch_wait()
    patches.broker_highwaters()
    patches.offset_fetch_errors()
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
        **faust_credentials(settings),
    )
    rt = Runtime(settings, Health(), CollectorRegistry(auto_describe=True))
    gc_policy = GcPolicy(sweep_seconds=settings.gc_sweep_hours * 3600)
    streams = {k.input_topic, k.facts_topic, k.journeys_topic}
    rt.registry.register(QueueCollector(lambda: rt.queues.values()))
    rt.registry.register(WorkerCollector(rt, lag=lambda: offsets.consumer_lag(app, rt.health.offsets, streams),
                                         assigned=lambda: offsets.assigned_counts(app)))
    rt.registry.register(RedisCollector(lambda: rt.snapshot))
    rt.registry.register(OutcomeCollector(lambda: rt.queues.values()))
    rt.registry.register(HoldCollector(rt.holds))

    topics = Topics(
        events=app.topic(k.input_topic, partitions=k.partitions, value_serializer="raw"),
        facts=app.topic(k.facts_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                        internal=True),
        rollups=app.topic(k.rollup_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw"),
        dead_letters=app.topic(k.dead_letter_topic, partitions=k.partitions, value_serializer="raw", key_serializer="raw"),
        journeys=app.topic(k.journeys_topic, partitions=k.partitions, value_serializer="json", key_serializer="raw",
                           internal=True))
    tables = add_tables(app, k.partitions)
    locks = {"one": asyncio.Lock(), "two": asyncio.Lock(), "journeys": asyncio.Lock()}
    out = rt.output = Output(app, locks, exactly_once=k.processing_guarantee == "exactly_once", source_topic=k.input_topic)
    if out.exactly_once:
        out.stable_transaction_groups(f"{app.conf.id}-__assignor-__leader", k.partitions)  # faust LeaderAssignor's topic
    gap_reader = offsets.GapReader(settings, read_committed=out.exactly_once)
    # Fetched records reach the stages a partition's fetch at a time (worker/intake.py).
    intakes = {name: intake.Intake() for name in (k.input_topic, k.facts_topic, k.journeys_topic)}
    w = Worker(app, rt, topics, tables, locks, out, intakes, gap_reader, engine)
    patches.install_intake(app, intakes)
    intake.manage(app, intakes)  # emptied when partitions are revoked
    recovery.install_revoked(w)  # what was applied is committed when a rebalance begins

    @app.task
    async def event_loop_holds():
        await rt.holds.run()  # until the worker stops (cancelled)

    @app.task
    async def tune_consumer():
        patches.quick_hand_off(app.consumer)
        if out.exactly_once:
            out.guard_fences()

    @app.task
    async def gap_reader_closer():
        try:
            await asyncio.Event().wait()  # until the worker stops (cancelled)
        finally:
            await gap_reader.close()

    stages.install(w)
    clock.install(w)
    if settings.redis_url is not None:  # the live snapshot for the wallboard (processor/snapshot.py)
        install_redis_snapshot(w)
    housekeeping.install_expiry(w)
    offsets.install_stall_watch(w)
    housekeeping.install_gc(w, gc_policy)
    recovery.install(w)
    web.install(w)
    app.kpi_runtime = rt  # for tests and the CLI
    return app, rt


def install_redis_snapshot(w: Worker) -> None:
    """The live snapshot: computed on a timer, written by a background task (processor/snapshot.py)."""
    from ..snapshot import SNAPSHOT_SECONDS, RedisSnapshot

    app, rt, holds = w.app, w.rt, w.holds
    snap = rt.snapshot = RedisSnapshot(w.settings.redis_url.get_secret_value())

    async def redis_snapshot():
        with holds.step("redis snapshot"):
            snap.offer(rt.queues)  # computes only; a background task writes, never blocking this

    async def redis_snapshot_writer():
        await snap.run()  # until the worker stops (cancelled), then closes the connection

    app.timer(SNAPSHOT_SECONDS, name="processor.app.create_app.<locals>.redis_snapshot")(redis_snapshot)
    app.task(redis_snapshot_writer)
