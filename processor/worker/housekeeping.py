"""The worker's housekeeping pass, cut into slices that each hold the event loop briefly.

A book's `expire(limit=n)` processes at most n items and returns how many; n back means "call
again". Each slice holds the stage's lock (a batch never sees a book half-expired within one call)
for about `budget` seconds of loop time, then releases it and suspends, so that the stage's
batches, the tick, /metrics and the live snapshot run between two slices. The books are looked up
again at every slice: a rebuild (on_recover) may have replaced them meanwhile, and a replaced book
simply starts its own pass.

The garbage-collection timer is here too: long-lived state is kept out of the cycle collector's
way (processor/gc_policy.py).
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from ..gc_policy import FREEZE_SECONDS, GcPolicy
from ..loophold import SLICE_SECONDS, HoldMonitor, Slicer
from .stages import persist_journeys, persist_one, persist_two

if TYPE_CHECKING:
    from .runtime import Worker

EXPIRE_SECONDS = 5.0        # housekeeping: often, so each pass frees little at once (docs/architecture.md#tick-timer)
EXPIRE_LIMIT = 500  # items one expire() call processes at most


def install_expiry(w: Worker) -> None:
    """The housekeeping timer: each slice writes the table deletions its expire() calls made before it
    releases the stage's lock, with the stage's own write set (stages.persist_one/two/journeys). In
    slices that release the stage's lock and the loop (expire_stage); a slow one is logged by the hold
    monitor."""
    rt, locks, holds = w.rt, w.locks, w.holds

    def while_producing(persist):
        """A timer still runs while the worker stops its producer (seen: a crash at shutdown, NotReady): the
        slice's rows are then left dirty (the expired rows of a restarted worker are expired again)."""
        async def writes(book, part: int, slicer: Slicer) -> None:
            if not w.app.producer.should_stop:
                await persist(w, book, part, slicer)
        return writes

    async def housekeeping():
        await expire_stage("one", locks["one"], lambda: rt.contacts, holds, persist=while_producing(persist_one))
        await expire_stage("two", locks["two"], lambda: rt.queues, holds, persist=while_producing(persist_two))
        await expire_stage("journeys", locks["journeys"], lambda: rt.journeys, holds,
                           persist=while_producing(persist_journeys))

    w.app.timer(EXPIRE_SECONDS, name="processor.app.create_app.<locals>.housekeeping")(housekeeping)


def install_gc(w: Worker, gc_policy: GcPolicy) -> None:
    holds = w.holds

    async def garbage_collection():
        with holds.step("garbage collection"):
            gc_policy.tick()  # long-lived state out of the cycle collector's way (processor/gc_policy.py)

    w.app.timer(FREEZE_SECONDS, name="processor.app.create_app.<locals>.garbage_collection")(garbage_collection)


async def expire_stage(name: str, lock: asyncio.Lock, books_now: Callable[[], dict], holds: HoldMonitor, *,
                       limit: int | None = EXPIRE_LIMIT, budget: float = SLICE_SECONDS,
                       persist: Callable[[object, int, Slicer], Awaitable[None]] | None = None) -> int:
    """Expire every book of one stage, in slices; returns the number of slices (lock holds) it took.
    limit=None: each book's whole pass in one call (a book whose expire takes no limit).

    `persist(book, partition, slicer)`, when given, writes what an expire() call changed (the table
    deletions) in the same slice, before the lock is released (about 1,000 rows for EXPIRE_LIMIT). Left to the stage's next batch,
    as before, a pass that had fallen behind during a catch-up (days of event time due at once) made
    that batch write hundreds of thousands of deletions before it could ack, and the gauges waited."""
    todo: list | None = None
    slices = 0
    while todo is None or todo:
        async with lock:
            acquired = time.perf_counter()
            # Records the slice as a section; never suspends on its own: a yield with the lock held lets
            # /metrics and the other stages run, but not this stage's batch, which waits for the lock (in the
            # 30-day soak, every yield inside the writes could cost the stage a 0.3-0.7 s /metrics rendering).
            slicer = Slicer(float("inf"), monitor=holds, name=f"housekeeping ({name})")
            books = books_now()
            if todo is None:
                todo = sorted(books)
            while todo:
                part = todo[0]
                book = books.get(part)
                if book is None or limit is None or book.expire(limit=limit) < limit:
                    if book is not None and limit is None:
                        book.expire()
                    todo.pop(0)  # gone with a rebalance, or its pass is over
                if book is not None and persist is not None:
                    await persist(book, part, slicer)  # (suspends only if the producer makes it wait)
                now = time.perf_counter()
                if now - acquired >= budget or holds.turn_over(now):
                    break  # the lock is released at least every `budget` (or the loop's turn) plus one call's writes
            slicer.done()
        slices += 1
        if todo:
            await asyncio.sleep(0)  # the lock is free: whatever waits for it or for the loop runs now
    return slices
