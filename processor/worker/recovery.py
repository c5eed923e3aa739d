"""Recovery: after every rebalance the books are rebuilt from the tables for exactly the partitions
this worker owns (the three `on_recover` rebuilds), and nothing is applied between the rebuild and
Faust's seek to the committed offsets (RepeatGuard, processor/offset_guard.py).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from ..core.contacts import ContactBook
from ..loophold import Slicer
from . import patches
from .runtime import new_journey_book, new_queue_book
from .tables import owned_rows, rows

if TYPE_CHECKING:
    from .runtime import Worker

log = logging.getLogger("processor")
RESTORE_CHUNK = 500           # journey facts restored between two looks at the clock (see Slicer)


def install_revoked(w: Worker) -> None:
    """The commit that begins a rebalance (finish_before_recovery)."""
    async def _finish_before_recovery(sender, revoked, **kwargs) -> None:
        await finish_before_recovery(w)

    w.app.on_partitions_revoked.connect(_finish_before_recovery, weak=False)


def install(w: Worker) -> None:
    """The rebuilds, on the tables whose recovery ends them."""
    async def _recover_stage_one():
        await recover_stage_one(w)

    async def _recover_stage_two():
        await recover_stage_two(w)

    async def _recover_journeys():
        await recover_journeys(w)

    w.tables.contacts.on_recover(_recover_stage_one)
    w.tables.facts.on_recover(_recover_stage_two)
    w.tables.journeys.on_recover(_recover_journeys)


async def finish_before_recovery(w: Worker) -> None:
    """A rebalance begins: nothing more is applied until the seek that follows the rebuild
    (RepeatGuard.hold), and what was applied is committed now.

    Faust's recovery reads a partition this worker keeps from its changelog again, from where
    the last recovery ended to the highwater: every write since then is applied to the store
    once more. A write not in the changelog by then (a batch still running; with exactly_once,
    anything in the open transaction, which read_committed does not show) would lose its key
    to the older value while other keys of the same batch keep the newer one. After the commit
    every write is in the changelog, committed, before recovery measures the highwater."""
    rt, out = w.rt, w.out
    for topic in w.stream_topics:
        rt.guard.hold(topic)
    out.fenced_in_rebalance.clear()
    try:
        await out.commit_before_rebalance()
    except Exception as exc:  # noqa: BLE001 - the rebalance goes on; the guard re-applies from what is committed
        log.warning("commit before the rebalance failed: %r", exc)


def owned_partitions(w: Worker, topic: str) -> set[int]:
    """The partitions of `topic` this worker owns now (active assignment)."""
    return {tp.partition for tp in w.app.assignor.assigned_actives() if tp.topic == topic}


def begin_rebuild(w: Worker, stage: str, topic: str, new_book) -> tuple[Slicer, set[int], dict]:
    """A rebuild of `topic`'s books begins (its stage's lock held): its slicer (rows are restored in
    slices, the lock stays held), the partitions owned now, and a new empty book for each."""
    slicer = Slicer(monitor=w.holds, name=f"restore ({stage})")
    rebuilt(w, topic)
    owned = owned_partitions(w, topic)
    return slicer, owned, {p: new_book() for p in owned}


def rebuilt(w: Worker, topic: str) -> None:
    """Recovery rebuilt the topic's books: nothing of it is applied until Faust seeks its
    partitions to their committed offsets, and from there on everything is (RepeatGuard)."""
    rt, intakes = w.rt, w.intakes
    rt.guard.rebuilt(topic)

    def sought(committed: dict) -> None:
        rt.guard.sought(committed)
        for topic in {topic for topic, _ in committed}:
            intakes[topic].clear()  # fetched before the seek: it comes again

    patches.track_seeks(w.app.consumer, set(w.stream_topics), sought)


async def recover_stage_one(w: Worker) -> None:
    rt, k, engine, tables = w.rt, w.k, w.engine, w.tables
    async with w.locks["one"]:
        slicer, owned, books = begin_rebuild(w, "one", k.input_topic, lambda: ContactBook(engine))
        await restore_rows(tables.contacts, books, slicer, ContactBook.restore_contact)
        await restore_rows(tables.agents, books, slicer, ContactBook.restore_agent)  # before their event ids
        await restore_rows(tables.profiles, books, slicer, restore_profile)
        await restore_rows(tables.agent_ids, books, slicer, ContactBook.restore_agent_id)
        await restore_rows(tables.customers, books, slicer, ContactBook.restore_customer)
        rt.contacts = books
        now = time.monotonic()
        rt.last_read = {p: rt.last_read.get(p, now) for p in owned}
        slicer.done()
        log.info("stage one rebuilt: %d contacts, %d agents, partitions %s",
                 sum(len(b.contacts) for b in books.values()), sum(len(b.agents) for b in books.values()), sorted(owned))


async def recover_stage_two(w: Worker) -> None:
    rt, k, engine, tables = w.rt, w.k, w.engine, w.tables
    async with w.locks["two"]:
        slicer, owned, books = begin_rebuild(w, "two", k.facts_topic, lambda: new_queue_book(engine, k.partitions))
        await restore_rows(tables.facts, books, slicer, lambda book, fid, fact: book.restore_fact(fid, fact))
        await restore_rows(tables.published, books, slicer, lambda book, key, value: book.restore_published(key, value))
        keep_clocks(books, rt.queues)
        rt.queues = books
        slicer.done()
        log.info("stage two rebuilt: %d facts, partitions %s",
                 sum(len(b.facts) for b in books.values()), sorted(owned))


async def recover_journeys(w: Worker) -> None:
    rt, k, engine, tables = w.rt, w.k, w.engine, w.tables
    async with w.locks["journeys"]:
        slicer, owned, books = begin_rebuild(w, "journeys", k.journeys_topic, lambda: new_journey_book(engine, k.partitions))
        stored: dict[int, list] = defaultdict(list)
        for fid, p, fact in rows(tables.journeys, books):
            await slicer.pause()
            stored[p].append((fid, fact))
        for p, facts in stored.items():
            for i in range(0, len(facts), RESTORE_CHUNK):
                books[p].restore(facts[i:i + RESTORE_CHUNK])
                await slicer.pause()
        keep_clocks(books, rt.journeys)
        rt.journeys = books
        slicer.done()
        log.info("journeys rebuilt: %d facts, partitions %s",
                 sum(len(b.facts) for b in books.values()), sorted(owned))


async def restore_rows(table, books: dict, slicer: Slicer, restore) -> None:
    """`restore(book, key, value)` for each row of `table` owned by a book in `books` (partition -> book),
    one row per slicer step."""
    for key, book, value in owned_rows(table, books):
        await slicer.pause()
        restore(book, key, value)


def restore_profile(book: ContactBook, cid: str, state) -> None:
    """A profile row, unless its contact is still in progress (restored from the contacts table)."""
    if cid not in book.contacts:
        book.restore_profile(cid, state)


def keep_clocks(books: dict, old_books: dict) -> None:
    """A partition kept through a rebalance keeps its clock (sources heard, stream time) in the rebuilt book."""
    for p, book in books.items():
        old = old_books.get(p)
        if old is not None:
            book.sources, book.heard = dict(old.sources), set(old.heard)
            book.stream_ms, book.latest_ms = old.stream_ms, old.latest_ms
