"""The worker's housekeeping pass, cut into slices that each hold the event loop briefly.

A book's `expire(limit=n)` processes at most n items and returns how many; n back means "call
again". Each slice holds the stage's lock (a batch never sees a book half-expired within one call)
for about `budget` seconds of loop time, never suspending: it expires, writes the deletions to the
tables and appends their changelog records to the Output's batches. Then it releases the lock and
only then waits for the producer to take the batches it filled (Output.submit_queued; per
partition they keep their order with the stage's own records), and suspends, so that the stage's
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
from ..loophold import SLICE_SECONDS, HoldMonitor
from .stages import write_journeys, write_one, write_two

if TYPE_CHECKING:
    from .runtime import Worker

EXPIRE_SECONDS = 5.0        # housekeeping: often, so each pass frees little at once (docs/architecture.md#tick-timer)
EXPIRE_LIMIT = 500  # items one expire() call processes at most


def install_expiry(w: Worker) -> None:
    """One housekeeping timer per stage: each slice writes the table deletions its expire() calls made,
    with the stage's own write set (stages.write_one/two/journeys), before it releases the stage's lock,
    and hands them to the producer after (Output.submit_queued). A slow slice is logged by the hold monitor.

    One timer per stage, not one for the three in turn: a stage-one pass waits for stage one's lock
    between its slices (a batch holds it while the producer makes it wait), and in a catch-up such a
    pass lasted 25-34 s; stage two's pass, behind it, then let the expired queue segments pile up
    (three times as many at the end of the 500,000-event bench, the worker's peak memory +18 %)."""
    rt, locks, holds, out = w.rt, w.locks, w.holds, w.out

    def producing() -> bool:
        """A timer still runs while the worker stops its producer (seen: a crash at shutdown, NotReady): the
        slice's rows are then left dirty (the expired rows of a restarted worker are expired again)."""
        return not w.app.producer.should_stop

    def while_producing(write):
        def writes(book, part: int, due) -> bool:
            return write(w, book, part, due) if producing() else True
        return writes

    async def hand_over() -> None:
        if not producing():
            return
        try:
            await out.submit_queued()
        except Exception:
            if producing():
                raise
            # The worker stopped its producer meanwhile (NotReady, ProducerClosed): the slice's records stay
            # unsent, as rows left dirty at a stop do. Raised, it made every shutdown in a catch-up a crash.

    def timer(stage: str, books_now, write) -> None:
        async def housekeeping():
            await expire_stage(stage, locks[stage], books_now, holds, write=while_producing(write), hand_over=hand_over)

        w.app.timer(EXPIRE_SECONDS, name=f"processor.worker.housekeeping.{stage}")(housekeeping)

    timer("one", lambda: rt.contacts, write_one)
    timer("two", lambda: rt.queues, write_two)
    timer("journeys", lambda: rt.journeys, write_journeys)


def install_gc(w: Worker, gc_policy: GcPolicy) -> None:
    holds = w.holds

    async def garbage_collection():
        with holds.step("garbage collection"):
            gc_policy.tick()  # long-lived state out of the cycle collector's way (processor/gc_policy.py)

    w.app.timer(FREEZE_SECONDS, name="processor.app.create_app.<locals>.garbage_collection")(garbage_collection)


async def expire_stage(name: str, lock: asyncio.Lock, books_now: Callable[[], dict], holds: HoldMonitor, *,
                       limit: int | None = EXPIRE_LIMIT, budget: float = SLICE_SECONDS,
                       write: Callable[[object, int, Callable[[], bool]], bool] | None = None,
                       hand_over: Callable[[], Awaitable[None]] | None = None) -> int:
    """Expire every book of one stage, in slices; returns the number of slices (lock holds) it took.
    limit=None: each book's whole pass in one call (a book whose expire takes no limit).

    `write(book, partition, due)`, when given, writes what an expire() call changed (the table
    deletions) in the same slice, before the lock is released. Left to the stage's next batch, as
    before, a pass that had fallen behind during a catch-up (days of event time due at once) made that
    batch write hundreds of thousands of deletions before it could ack. `write` must not suspend: the
    rows go to the store and their records to the Output's batches. It writes TAKE_LIMIT keys at a
    time and stops once `due()` (the slice's budget or the loop's turn is used up), returning False:
    the keys left dirty in the book are written first by the next slice, before it expires more (or by
    the stage's batch, if it takes the lock in between: whoever holds the lock writes a key's value
    as it is then). Written whole, one expire(500) call's deletions held the loop 81-106 ms.
    `hand_over()` then waits, the lock released, until the producer has taken what the slice
    queued: a slow producer delays the next slice, not the stage (awaited under the lock, a
    catch-up's backpressure held stage one's lock 2.1 s in the 30-day soak)."""
    todo: list | None = None
    over: set = set()    # partitions whose expiry pass is over (only their writes may be left)
    behind: set = set()  # partitions whose last write was cut by the slice's end: written first
    slices = 0
    while todo is None or todo:
        async with lock:
            # Never suspends with the lock held: a yield lets /metrics and the other stages run, but not
            # this stage's batch, which waits for the lock (in the 30-day soak, every yield inside the
            # writes could cost the stage a 0.3-0.7 s /metrics rendering).
            with holds.step(f"housekeeping ({name})"):
                acquired = time.perf_counter()

                def due() -> bool:
                    now = time.perf_counter()
                    return now - acquired >= budget or holds.turn_over(now)

                books = books_now()
                if todo is None:
                    todo = sorted(books)
                while todo:
                    part = todo[0]
                    book = books.get(part)
                    if book is None:
                        todo.pop(0)  # gone with a rebalance
                        continue
                    if part in behind:
                        if not write(book, part, due):
                            break
                        behind.discard(part)
                        if due():
                            break
                    if part not in over:
                        n = book.expire() if limit is None else book.expire(limit=limit)
                        if limit is None or n < limit:
                            over.add(part)  # its pass is over
                    if write is not None and not write(book, part, due):
                        behind.add(part)
                        break
                    if part in over:
                        todo.pop(0)
                    if due():
                        break  # the lock is released at least every `budget` (or the loop's turn) plus one call
        slices += 1
        if hand_over is not None:
            await hand_over()  # the lock is free: the stage's batch may run while the producer takes ours
        if todo:
            await asyncio.sleep(0)  # the lock is free: whatever waits for it or for the loop runs now
    return slices
