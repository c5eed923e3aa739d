"""The three stages, each a Faust agent with concurrency 1 (Faust can commit past in-flight messages otherwise):

  stage_one       contact-events (keyed by contact/agent/customer) -> ContactBook
                    -> facts topic: queue facts by queue, agent facts by agent
                    -> journeys topic: journey facts by customer
  stage_journeys  journeys topic -> JourneyBook (per-contact FCR / repeat / reopen, retention)
                    -> facts topic: contributions by queue
  stage_two       facts topic    -> QueueBook (+ experience, agent, resolution books) -> contact-rollups

The agents' streams stay empty: the records come from the intakes (worker/intake.py); the agents
remain for Faust's subscription, assignment and transactions by topic. Each batch is taken with
its stage's lock held (`take`), its offsets mended (offsets.mend_gaps), applied, its outputs sent
and its changed rows persisted, then acked (Output.ack).
"""
from __future__ import annotations

import asyncio
import time
import zlib
from collections import defaultdict
from typing import TYPE_CHECKING

import orjson

from .. import deadletter
from ..core.contacts import ContactBook
from ..core.journeys import JourneyBook
from ..core.queues import QueueBook
from ..core.segments import fact_from_json
from ..core.publish import record_identity
from ..decode import BadEvent, decode
from ..loophold import Slicer
from .offsets import mend_gaps
from .tables import persist_all, write_all

if TYPE_CHECKING:
    from .runtime import Worker

ADVANCE_LIMIT = 25            # records built by one QueueBook.advance call between two looks at the clock: about
                              # 0.17 ms of CPU each in a 30-day catch-up, so 100 held the loop 15-23 ms a call
BATCH_MAX = 5000              # records a stage takes from its intake at most (whatever has arrived, no waiting)


def install(w: Worker) -> None:
    """The three agents, under the names Faust gave them when they were defined in processor/app.py."""
    app, t = w.app, w.topics

    async def stage_one(stream):
        await run_stage_one(w)

    async def stage_two(stream):
        await run_stage_two(w)

    async def stage_journeys(stream):
        await run_stage_journeys(w)

    app.agent(t.events, name="processor.app.stage_one", concurrency=1)(stage_one)
    app.agent(t.facts, name="processor.app.stage_two", concurrency=1)(stage_two)
    app.agent(t.journeys, name="processor.app.stage_journeys", concurrency=1)(stage_journeys)


async def take(w: Worker, topic: str, lock: asyncio.Lock) -> list:
    """The next records of `topic`, returned with its stage lock acquired. Records taken before a
    rebalance that happened while waiting for the lock are dropped and the next ones taken
    (Faust seeks back to the committed offsets: they come again)."""
    app, intakes = w.app, w.intakes
    while True:
        batch = await intakes[topic].take(lambda: app.consumer_generation_id, BATCH_MAX)
        generation = app.consumer_generation_id  # the batch's (take drops older lists)
        await lock.acquire()
        if app.consumer_generation_id == generation:
            return batch
        lock.release()


async def run_stage_one(w: Worker) -> None:
    rt, k, out, locks, holds, settings = w.rt, w.k, w.out, w.locks, w.holds, w.settings
    facts_topic, journeys_topic, dlq_topic = w.topics.facts, w.topics.journeys, w.topics.dead_letters
    route = router(k.partitions)
    # Batches, not single events: deltas of a batch are coalesced per fact and sent as one
    # message per queue, and each touched contact is written to its table once per batch.
    while True:
        batch = await take(w, k.input_topic, locks["one"])
        try:  # the lock is held (see take)
            batch = await mend_gaps(w, batch)
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
                    ev = decode(raw, not_after_ms, precheck=True)  # (no reference cycle per event: see decode)
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
                    by_queue[queue].append(item(fact_id, queue, fact))
                for queue, items in by_queue.items():
                    await slicer.pause()
                    await out.send(facts_topic, part, key=queue.encode(), value=fact_message(part, book.stream_ms, items))
                # Agent and journey facts: one message per target partition (not per agent or customer).
                by_target: dict[tuple[str, int], list] = defaultdict(list)
                for (fact_id, topic, target, key), fact in routed.get(part, {}).items():
                    await slicer.pause()
                    by_target[(topic, target)].append(item(fact_id, key, fact))
                for (topic, target), items in sorted(by_target.items()):
                    await slicer.pause()
                    await out.send(facts_topic if topic == "facts" else journeys_topic, part, partition=target,
                                   key=b"", value=fact_message(part, book.stream_ms, items))
                await persist_one(w, book, part, slicer)
            slicer.done()
            await out.ack(batch)
        finally:
            locks["one"].release()


async def apply_facts(w: Worker, batch: list, book_of, name: str) -> set[int]:
    """Fact messages ({"src", "wm", "idle", "d"}) into the book of their partition; returns the partitions
    touched. Suspends every SLICE_SECONDS (a message may carry thousands of facts): the lock stays held."""
    rt, holds = w.rt, w.holds
    touched: set[int] = set()
    slicer = Slicer(monitor=holds, name=name)
    for r in batch:
        part = r.partition
        rt.health.observe_offset(r.topic, part, r.offset)
        value = json_or_none(r.value) or {}
        book = book_of(part)
        touched.add(part)
        for fact_id, fact, *route in value.get("d", ()):
            await slicer.pause()
            book.apply(fact_id, fact_from_json(fact) if fact is not None else None, *route)
        book.observe(int(value.get("wm", 0)), int(value.get("src", 0)), bool(value.get("idle")))
    slicer.done()
    return touched


async def run_fact_stage(w: Worker, topic: str, stage: str, book_of, facts_step: str, output) -> None:
    """Stage two and the journeys stage: fact messages of `topic` into the books, `output(parts)` for the
    partitions a batch touched (in order), then the ack; each batch with the stage's lock held, so a
    rebuild (on_recover) never swaps the books mid-batch."""
    lock = w.locks[stage]
    while True:
        batch = await take(w, topic, lock)
        try:
            batch = await mend_gaps(w, batch)  # only what it returns is applied, so only that is acked
            touched = await apply_facts(w, batch, book_of, facts_step)
            await output(sorted(touched))
            await w.out.ack(batch)
        finally:
            lock.release()


async def run_stage_two(w: Worker) -> None:
    rt, out, holds, rollups_topic = w.rt, w.out, w.holds, w.topics.rollups

    async def publish(parts: list[int]) -> None:
        slicer = Slicer(monitor=holds, name="stage two: publication")
        published = 0
        for part in parts:
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
        for part in parts:
            await persist_two(w, rt.queue_book(part), part, slicer)  # a day close owes thousands of digests
        slicer.done()

    await run_fact_stage(w, w.k.facts_topic, "two", rt.queue_book, "stage two: facts", publish)


async def run_stage_journeys(w: Worker) -> None:
    rt, holds = w.rt, w.holds

    async def contribute(parts: list[int]) -> None:
        slicer = Slicer(monitor=holds, name="journeys: output")
        for part in parts:
            book = rt.journey_book(part)
            await send_contributions(w, book, part, slicer)
            await persist_journeys(w, book, part, slicer)
        slicer.done()

    await run_fact_stage(w, w.k.journeys_topic, "journeys", rt.journey_book, "journeys: facts", contribute)


# A stage's changed keys into its tables: those of a batch (persist_*, suspending every SLICE_SECONDS),
# or those a housekeeping slice expired (write_*, never suspending: written under the stage's lock,
# handed to the producer after it is released; housekeeping.install_expiry).
def write_set_one(w: Worker, book: ContactBook) -> list:
    """Stage one's tables, each with the take_dirty… of the book that feeds it (a pair: two at once)."""
    t = w.tables
    return [(book.take_dirty, t.contacts, t.agents), (book.take_dirty_profiles, t.profiles),
            (book.take_dirty_customers, t.customers), (book.take_dirty_agent_ids, t.agent_ids)]


def write_set_two(w: Worker, book: QueueBook) -> list:
    return [(book.take_dirty, w.tables.facts, w.tables.published)]


def write_set_journeys(w: Worker, book: JourneyBook) -> list:
    return [(book.take_dirty, w.tables.journeys)]


async def persist_one(w: Worker, book: ContactBook, part: int, slicer: Slicer) -> None:
    await persist_all(w.out, write_set_one(w, book), part, slicer)


async def persist_two(w: Worker, book: QueueBook, part: int, slicer: Slicer) -> None:
    await persist_all(w.out, write_set_two(w, book), part, slicer)


async def persist_journeys(w: Worker, book: JourneyBook, part: int, slicer: Slicer) -> None:
    await persist_all(w.out, write_set_journeys(w, book), part, slicer)


def write_one(w: Worker, book: ContactBook, part: int, due) -> bool:
    return write_all(w.out, write_set_one(w, book), part, due)


def write_two(w: Worker, book: QueueBook, part: int, due) -> bool:
    return write_all(w.out, write_set_two(w, book), part, due)


def write_journeys(w: Worker, book: JourneyBook, part: int, due) -> bool:
    return write_all(w.out, write_set_journeys(w, book), part, due)


async def send_contributions(w: Worker, book: JourneyBook, part: int, slicer: Slicer) -> None:
    """The journey book's contributions, by queue, to stage two; its clock as source N + partition."""
    k, out, facts_topic = w.k, w.out, w.topics.facts
    by_queue: dict[str, list] = defaultdict(list)
    for fact_id, queue, fact in book.take_deltas():
        await slicer.pause()
        by_queue[queue].append(item(fact_id, queue, fact))
    for queue, items in by_queue.items():
        await slicer.pause()
        await out.send(facts_topic, part, key=queue.encode(), value=fact_message(k.partitions + part, book.stream_ms, items))


def router(partitions: int):
    """route(key): partition of an agent's or a customer's facts, a stable hash (Python's hash() is salted)."""

    def route(key: str) -> int:
        return zlib.crc32(key.encode()) % partitions

    return route


def json_or_none(raw: bytes | None):
    return orjson.loads(raw) if raw else None


def fact_message(src: int, stream_ms: int, items: list, idle: bool | None = None) -> dict:
    """A message of the facts and journeys topics (read by apply_facts): the deltas `items` and the
    stream clock of upstream source `src` (input partition N, or partitions + N for journeys partition
    N); `idle` only on a tick (an input partition with nothing to read holds no watermark back)."""
    if idle is None:
        return {"src": src, "wm": stream_ms, "d": items}
    return {"src": src, "wm": stream_ms, "idle": idle, "d": items}


def item(fact_id: str, route: str, fact: tuple | None) -> list:
    """A delta on the wire: [id, fact] for an upsert, [id, null, route] for a delete (see QueueBook.apply)."""
    return [fact_id, list(fact)] if fact is not None else [fact_id, None, route]


def rollup_key(rec: dict) -> bytes:
    """Message key of a rollup record (core/publish.record_identity)."""
    return "|".join(str(part) for part in record_identity(rec)).encode()
