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
from typing import TYPE_CHECKING, Callable

from ..gc_policy import FREEZE_SECONDS, GcPolicy
from ..loophold import SLICE_SECONDS, HoldMonitor

if TYPE_CHECKING:
    from .runtime import Worker

EXPIRE_SECONDS = 5.0        # housekeeping: often, so each pass frees little at once (docs/architecture.md#tick-timer)
EXPIRE_LIMIT = 500  # items one expire() call processes at most


def install_expiry(w: Worker) -> None:
    """The housekeeping timer: expiry only marks keys dirty; they are deleted from the tables by the
    next batch of the stage. In slices that release the stage's lock and the loop (expire_stage); a
    slow one is logged by the hold monitor."""
    rt, locks, holds = w.rt, w.locks, w.holds

    async def housekeeping():
        await expire_stage("one", locks["one"], lambda: rt.contacts, holds)
        await expire_stage("two", locks["two"], lambda: rt.queues, holds)
        await expire_stage("journeys", locks["journeys"], lambda: rt.journeys, holds)

    w.app.timer(EXPIRE_SECONDS, name="processor.app.create_app.<locals>.housekeeping")(housekeeping)


def install_gc(w: Worker, gc_policy: GcPolicy) -> None:
    holds = w.holds

    async def garbage_collection():
        with holds.step("garbage collection"):
            gc_policy.tick()  # long-lived state out of the cycle collector's way (processor/gc_policy.py)

    w.app.timer(FREEZE_SECONDS, name="processor.app.create_app.<locals>.garbage_collection")(garbage_collection)


async def expire_stage(name: str, lock: asyncio.Lock, books_now: Callable[[], dict], holds: HoldMonitor, *,
                       limit: int | None = EXPIRE_LIMIT, budget: float = SLICE_SECONDS) -> int:
    """Expire every book of one stage, in slices; returns the number of slices (lock holds) it took.
    limit=None: each book's whole pass in one call (a book whose expire takes no limit)."""
    todo: list | None = None
    slices = 0
    while todo is None or todo:
        async with lock:
            t0, gc0 = time.perf_counter(), holds.gc_seconds
            books = books_now()
            if todo is None:
                todo = sorted(books)
            while todo:
                book = books.get(todo[0])
                if book is None or limit is None or book.expire(limit=limit) < limit:
                    if book is not None and limit is None:
                        book.expire()
                    todo.pop(0)  # gone with a rebalance, or its pass is over
                if time.perf_counter() - t0 >= budget:
                    break
            holds.section(f"housekeeping ({name})", t0, time.perf_counter(), gc0)
        slices += 1
        if todo:
            await asyncio.sleep(0)  # the lock is free: whatever waits for it or for the loop runs now
    return slices
