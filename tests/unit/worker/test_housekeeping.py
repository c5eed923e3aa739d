"""Housekeeping in slices: the stage's lock is free between slices, and a sliced pass leaves the books
exactly as one whole pass does (processor/worker/housekeeping.py, ContactBook/QueueBook.expire(limit))."""
from __future__ import annotations

import asyncio
import dataclasses

from processor.core.pipeline import Pipeline
from processor.worker.housekeeping import expire_stage
from processor.loophold import HoldMonitor
from tests.coretools import engine
from tests.unit.core.test_bounded_state import T0, HOUR, _hour


class CountingBook:
    """Has `due` items to expire, `limit` at most per call."""

    def __init__(self, due: int) -> None:
        self.due, self.calls = due, 0

    def expire(self, limit: int | None = None) -> int:
        self.calls += 1
        n = self.due if limit is None else min(self.due, limit)
        self.due -= n
        return n


def test_the_lock_is_released_between_slices_and_every_book_finishes():
    books = {0: CountingBook(7), 1: CountingBook(0), 2: CountingBook(3)}
    lock, seen = asyncio.Lock(), []

    async def batch_in_between():
        await asyncio.sleep(0)  # the housekeeping starts first
        async with lock:        # a stage's batch takes the lock between two slices
            seen.append(sum(b.due for b in books.values()))

    async def main():
        slices, _ = await asyncio.gather(
            expire_stage("two", lock, lambda: books, HoldMonitor(), limit=2, budget=0), batch_in_between())
        return slices

    slices = asyncio.run(main())
    assert all(b.due == 0 for b in books.values())
    assert [b.calls for b in books.values()] == [4, 1, 2]  # 2+2+2+1, 0, 2+1: a return under the limit ends a book
    assert slices == 7                                     # budget 0: one call per lock hold
    assert seen and 0 < seen[0] < 10                        # the batch ran while the pass was under way


def test_what_a_slice_expired_is_written_by_that_slice_not_left_to_the_next_batch():
    """With `write`, each expire() call's changes are written before the lock is released: a batch
    between two slices never finds expired keys left over to write (a long pass used to leave them
    all to the stage's next batch, which then wrote them before it could ack)."""
    books = {0: CountingBook(5), 3: CountingBook(4)}
    lock, written, left_for_batches = asyncio.Lock(), [], []

    def write(book, part, due):
        written.append((part, book.calls))
        book.unwritten = 0
        return True

    def expire_marking(book):
        inner = book.expire

        def expire(limit=None):
            n = inner(limit)
            book.unwritten = n
            return n
        return expire

    for book in books.values():
        book.unwritten = 0
        book.expire = expire_marking(book)

    async def batches():
        for _ in range(10):
            await asyncio.sleep(0)
            async with lock:
                left_for_batches.append(sum(b.unwritten for b in books.values()))

    async def main():
        await asyncio.gather(expire_stage("one", lock, lambda: books, HoldMonitor(), limit=2, budget=0,
                                          write=write), batches())

    asyncio.run(main())
    assert all(b.due == 0 for b in books.values())
    assert written == [(0, 1), (0, 2), (0, 3), (3, 1), (3, 2), (3, 3)]  # after every call, in partition order
    assert left_for_batches and set(left_for_batches) == {0}


def test_a_slice_releases_the_lock_before_the_producer_takes_its_records():
    """During a catch-up the producer makes a submission wait (its backpressure): a slice that waited
    for it with the lock held kept the stage's batch waiting (2.1 s in the 30-day soak). The slice
    writes without suspending, releases the lock, then waits; the batch's records come after the
    slice's on their partition (a delete, then a new write of the key: recovery keeps the row)."""
    from tests.unit.worker.test_output import FakeAioProducer, _output

    gate = asyncio.Event()
    producer = FakeAioProducer(batch_size=300, slow=gate)
    out = _output(producer)
    books, lock = {0: CountingBook(2)}, asyncio.Lock()

    def write(book, part, due):
        for i in range(30):
            out.append_record("changelog", part, b"expired-%d" % i, None, part)  # fills batches: queued
        return True

    async def main():
        housekeeping = asyncio.ensure_future(expire_stage(
            "one", lock, lambda: books, HoldMonitor(), limit=5, write=write, hand_over=out.submit_queued))
        for _ in range(1000):
            if producer.waiting:
                break
            await asyncio.sleep(0.001)
        assert not lock.locked() and not housekeeping.done()  # waiting for the producer, the lock free
        async with lock:  # the stage's next batch (its own submission would wait behind the slice's)
            out.append_record("changelog", 0, b"expired-3", b"[0,{}]", 0)
        assert not housekeeping.done()
        gate.set()
        assert await asyncio.wait_for(housekeeping, 1) == 1
        await out.flush_batches()

    asyncio.run(main())
    keys = [(k, v) for t, p, recs in producer.sent for k, v in recs]
    assert keys[:30] == [(b"expired-%d" % i, None) for i in range(30)]
    assert keys[30:] == [(b"expired-3", b"[0,{}]")]


def test_a_write_cut_by_the_slices_end_is_finished_first_by_the_next_slice_or_by_the_batch():
    """One expire(500) call's deletions written whole held the loop 81-106 ms: `write` stops once `due()`
    and leaves the rest dirty in the book. The next slice writes them before it expires more; a batch
    that takes the lock in between may write them itself (it writes every dirty key as it is then)."""
    books = {0: CountingBook(6)}
    for book in books.values():
        book.unwritten = 0
    inner, log = CountingBook.expire, []

    def expire(limit=None):
        n = inner(books[0], limit)
        books[0].unwritten += n * 3  # three rows per expired item
        log.append(("expire", n))
        return n

    books[0].expire = expire

    def write(book, part, due):
        while book.unwritten:
            chunk = min(2, book.unwritten)  # two keys a take
            book.unwritten -= chunk
            log.append(("write", chunk))
            if book.unwritten and due():
                return False
        return True

    lock = asyncio.Lock()

    async def batch():
        for _ in range(3):
            await asyncio.sleep(0)
        async with lock:  # the stage's batch writes what is dirty, whoever left it
            log.append(("batch writes", books[0].unwritten))
            books[0].unwritten = 0

    async def main():
        slices, _ = await asyncio.gather(
            expire_stage("one", lock, lambda: books, HoldMonitor(), limit=3, budget=0, write=write), batch())
        return slices

    slices = asyncio.run(main())
    assert books[0].due == 0 and books[0].unwritten == 0
    expiring = [n for kind, n in log if kind == "expire"]
    assert expiring == [3, 3, 0]  # 3 + 3 items, then the call that says the pass is over
    # budget 0: one take a slice; never an expire() while rows of the last one are unwritten
    unwritten = 0
    for kind, n in log:
        if kind == "expire":
            assert unwritten == 0
            unwritten += 3 * n
        elif kind == "write":
            unwritten -= n
        else:
            assert n == unwritten
            unwritten = 0
    assert any(kind == "batch writes" for kind, _ in log)  # the batch ran between two slices of the pass
    assert max(n for kind, n in log if kind == "write") == 2 and slices > 2 * len(expiring)  # writes were cut


def test_a_book_replaced_by_a_rebuild_between_slices_starts_its_own_pass():
    old, new = CountingBook(4), CountingBook(2)
    books = {0: old}

    async def rebuild():
        await asyncio.sleep(0)
        books[0] = new

    async def main():
        await asyncio.gather(expire_stage("one", asyncio.Lock(), lambda: books, HoldMonitor(), limit=1, budget=0),
                             rebuild())

    asyncio.run(main())
    assert new.due == 0 and old.due > 0


def sliced_expire(p: Pipeline) -> int:
    """Pipeline.expire with every book expired one item per call, as the worker's slices
    do (a function, not a subclass: the compiled core's classes cannot be subclassed). Returns the calls."""
    calls = 0
    p.clear_dirty()
    while p.contacts.expire(limit=1) == 1:
        calls += 1
    while p.queues.expire(limit=1) == 1:
        calls += 1
    while p.journeys.expire(limit=1) == 1:
        calls += 1
    for fact_id, route, fact in p.journeys.take_deltas():
        p.queues.apply(fact_id, fact, route)
    p.clear_dirty()
    return calls


def _run(pipeline: Pipeline, events, sliced: bool) -> tuple[list, int]:
    records, next_hour, calls = [], T0 + HOUR, 0
    for e in events:
        while e.ts_ms >= next_hour:  # housekeeping once an hour of stream time
            if sliced:
                calls += sliced_expire(pipeline)
            else:
                pipeline.expire()
            next_hour += HOUR
        records += pipeline.feed(e)[0]
    return records + pipeline.finish(), calls


def _state(p: Pipeline) -> dict:
    q = p.queues
    return {"contacts": sorted(p.contacts.contacts), "profiles": sorted(p.contacts.profiles),
            "customers": sorted(p.contacts.customers), "queue facts": q.facts, "published": q.published,
            "floors": q._floors(), "intervals": {qc: sorted(b) for qc, b in q.intervals.items()},
            "experience": q.experience.facts, "agents": q.agent_book.facts, "resolution": q.resolution.facts}


def test_expiry_in_slices_of_one_item_gives_the_same_records_and_state_as_whole_passes():
    settings = dataclasses.replace(engine(window_days=1), retention_horizons_days=(1, 2))
    events = sorted((e for h in range(3 * 24) for e in _hour(h)), key=lambda e: (e.ts_ms, e.event_id))
    whole, sliced = Pipeline(settings), Pipeline(settings)
    (records, _), (sliced_records, calls) = _run(whole, events, False), _run(sliced, events, True)
    assert records == sliced_records
    assert _state(whole) == _state(sliced)
    assert calls > 1000  # the passes really were cut (profiles and facts one by one)
