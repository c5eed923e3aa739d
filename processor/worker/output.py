"""Output: every message a stage sends, collected into record batches handed to the producer in
order per partition, and (exactly_once) the transactions they belong to."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time

import faust

from . import patches
from .tables import dumps

log = logging.getLogger("processor")
IDLE_COMMIT_WAIT = 5.0        # exactly_once: longest the tick leaves transactions open for acks Faust cannot commit


class Output:
    """Every message a stage sends, and (exactly_once) the transactions they belong to.

    Faust picks a message's transaction by its destination partition, so a fact sent by input
    partition 0 to the facts partition of its queue would commit with that partition's offsets, or
    find no producer when another worker owns it, and a timer has no transaction at all. Here a
    message goes in the transaction of the partition whose input caused it (Faust opens one per
    owned partition of the co-partitioned group: input, facts, journeys and changelogs share it),
    and a commit waits for the batch in progress, so offsets, table writes and outputs commit
    together. A transaction with only clock ticks is committed on the next tick.

    Records are appended to a record batch per slot (transactional id, topic, partition); a full
    batch waits in its slot's queue until someone submits (`append_record` never waits, so a
    housekeeping slice appends under its stage's lock and submits after releasing it). Each
    slot's queue is handed to the producer oldest first by one task at a time, so per partition
    records reach the producer in the order they were appended, whoever submits; every flush
    (an ack, the guarded commit, `delivered`) takes the queues too
    (docs/architecture.md#records-leave-in-batches-not-one-by-one).
    """

    def __init__(self, app: faust.App, locks: dict[str, asyncio.Lock], *, exactly_once: bool, source_topic: str) -> None:
        self.app, self.locks, self.exactly_once, self.source_topic = app, locks, exactly_once, source_topic
        self.open: set[str] = set()  # transactional ids with messages not committed yet
        from aiokafka.partitioner import DefaultPartitioner
        self._partitioner, self._partitions = DefaultPartitioner(), list(range(app.conf.topic_partitions))
        self._guarded = False
        self.failed: BaseException | None = None  # the first record the producer could not deliver
        self._batches: dict[tuple, object] = {}  # (transactional id, topic, partition) -> aiokafka BatchBuilder
        # Closed batches (and lone records larger than a batch) not handed over yet, per slot in the
        # order they were appended, and the lock under which one task at a time hands them over.
        self._queued: dict[tuple, collections.deque] = {}
        self._submitting: dict[tuple, asyncio.Lock] = {}
        self._n_queued = 0
        # Batches handed to the producer and not acknowledged yet. A stage is done with its input
        # once it has handed its output over: after a backlog the producer may still hold seconds of
        # table writes, and whatever comes next waits behind them.
        self.in_flight = 0
        self._unacked: set = set()  # their futures (see delivered)
        self.fenced_in_rebalance: set[str] = set()  # exactly_once: see guard_fences
        self.acked_uncommitted = False  # exactly_once: offsets acked since a commit last took them (commit_idle)
        self._idle_skipped_since: float | None = None  # commit_idle: when it first left them to Faust's commit

    def stable_transaction_groups(self, leader_topic: str, partitions: int) -> None:
        """exactly_once: transactional ids that stay the same from one rebalance to the next (patches.py)."""
        patches.stable_transaction_groups(self.app.assignor, leader_topic, partitions)

    def transactional_id(self, partition: int) -> str:
        return f"{self.app.conf.id}-{self.app.assignor.group_for_topic(self.source_topic)}-{partition}"

    async def send(self, topic, src: int, *, key: bytes, value, partition: int | None = None) -> None:
        """`value` on `topic` (by `key`, or to `partition`), caused by input of partition `src`."""
        data = value if isinstance(value, bytes) else dumps(value)
        await self.send_record(topic.get_topic_name(), src, key, data, partition)

    async def send_record(self, topic: str, src: int, key: bytes, data: bytes | None, partition: int | None = None) -> None:
        """One serialized record, collected into a record batch of its partition (and transaction);
        a batch it filled goes to the producer before this returns (waiting for the producer if it must).

        Faust's per-message path (FutureMessage, producer buffer, codecs, one delivery future and
        callback per message) cost more than everything else a batch does
        (docs/architecture.md#records-leave-in-batches-not-one-by-one); the batches go to the
        producer whole, at the latest when the stage acks its input (`ack`)."""
        queued = self._n_queued
        slot = self.append_record(topic, src, key, data, partition)
        if self._n_queued > queued:  # this record closed a batch: it goes now, after those queued before it
            await self._submit_slot(slot)

    def append_record(self, topic: str, src: int, key: bytes, data: bytes | None, partition: int | None = None) -> tuple:
        """As send_record, without waiting: never suspends. A batch it filled waits in its slot's
        queue, in order, for whoever submits next (`submit_queued`, `send_record` of that slot,
        `flush_batches`). Returns the slot (transactional id, topic, partition).

        The queue is bounded by its callers, not here: a housekeeping slice appends about 1,000
        records (EXPIRE_LIMIT items, two tables), then waits for `submit_queued` before its next
        slice; a stage's `send_record` submits at once."""
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
            return slot
        self._close(slot)  # full (append closed it): queued, and a new one
        batch = self._batches[slot] = self._producer(tid).create_batch()
        if batch.append(timestamp=None, key=key, value=data) is None:  # larger than a batch on its own
            del self._batches[slot]  # (empty, and closed by the refusal)
            self._enqueue(slot, (key, data))
        return slot

    async def delivered(self) -> None:
        """Every record sent so far acknowledged by the broker; raises if one was not delivered."""
        await self.flush_batches()
        waiting = list(self._unacked)
        if waiting:
            await asyncio.wait(waiting)
        if self.failed is not None:
            from faust.exceptions import ProducerSendError
            raise ProducerSendError(f"a record was not delivered: {self.failed!r}")

    @contextlib.asynccontextmanager
    async def all_stages(self):
        """Every stage's lock, always in the same order: no batch is half applied while it is held."""
        async with self.locks["one"], self.locks["two"], self.locks["journeys"]:
            yield

    async def flush_all(self) -> None:
        """Every record handed over so far, ours and what Faust still buffers, into the producer's transactions."""
        await self.flush_batches()
        await self.app.producer.flush()

    async def flush_batches(self) -> None:
        """Hand every collected record batch to the producer: the queued ones, and those in progress.

        Returns once each slot's last batch is in the producer, also one another task was handing
        over meanwhile (a commit after this carries everything appended before it)."""
        for slot in list(self._batches):
            self._close(slot)
        await self.submit_queued()

    async def submit_queued(self) -> None:
        """Hand the queued (full) batches to the producer, each slot's in order; the batches in
        progress stay open. Waits while the producer makes it wait (its backpressure)."""
        busy = [slot for slot, queue in self._queued.items() if queue]  # (a batch leaves its queue once in the producer)
        for slot in busy:
            await self._submit_slot(slot)

    @property
    def queued(self) -> int:
        """Batches (and lone records) appended and not handed to the producer yet."""
        return self._n_queued

    def _close(self, slot: tuple) -> None:
        batch = self._batches.pop(slot)
        batch.close()  # nothing else may join it once queued
        self._enqueue(slot, batch)

    def _enqueue(self, slot: tuple, item) -> None:
        queue = self._queued.get(slot)
        if queue is None:
            queue = self._queued[slot] = collections.deque()
        queue.append(item)
        self._n_queued += 1

    async def _submit_slot(self, slot: tuple) -> None:
        """The slot's queue to the producer, oldest first. One task at a time per slot: aiokafka's
        send_batch waits while the partition has a pending batch, and two waiting tasks could be
        let in in either order; under the slot's lock the producer gets them in queue order."""
        lock = self._submitting.get(slot)
        if lock is None:
            lock = self._submitting[slot] = asyncio.Lock()
        async with lock:
            queue = self._queued.get(slot)
            while queue:
                # Taken off the queue once the producer has it: a submitter cancelled while the
                # producer made it wait (before aiokafka appends the batch) leaves it to the next one.
                # One the producer refused is dropped, and the error raised (as before the queues).
                try:
                    await self._submit(slot, queue[0])
                except asyncio.CancelledError:
                    raise
                except BaseException:
                    queue.popleft()
                    self._n_queued -= 1
                    raise
                queue.popleft()
                self._n_queued -= 1

    async def _submit(self, slot: tuple, item) -> None:
        tid, topic, partition = slot
        producer = self._producer(tid)
        if isinstance(item, tuple):  # a lone record, larger than a batch
            key, data = item
            fut = await producer.send(topic, data, key=key, partition=partition)
        else:
            fut = await producer.send_batch(item, topic, partition=partition)
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
        """at_least_once: a record that was not delivered fails the flush before a commit (patches.check_flush)."""
        if self._guarded:
            return
        patches.check_flush(self.app.producer, lambda: self.failed)
        self._guarded = True

    def _guard_commits(self) -> None:
        """Make Faust's commits wait for the batch in progress and carry the table writes and ticks too."""
        if self._guarded:
            return
        patches.guard_commits(self)
        self._guarded = True

    def add_acked_meanwhile(self, offsets: dict) -> None:
        """The offsets acked while the guarded commit waited for the batch in progress, into `offsets`
        (fault H, docs/reliability.md; patches.add_acked_meanwhile)."""
        consumer = self.app.consumer
        self.acked_uncommitted, self._idle_skipped_since = False, None  # every ack so far is taken into account here
        patches.add_acked_meanwhile(consumer, offsets)

    def guard_fences(self) -> None:
        """exactly_once: a fenced transactional producer stops the worker (patches.guard_fences)."""
        patches.guard_fences(self.app, self.fenced_in_rebalance)

    async def commit_open(self, *, begin: bool = True) -> None:
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
        async with self.all_stages():
            if not self.exactly_once:  # at_least_once: its records handed over before Faust's flush
                await self.flush_batches()
        await self.app.consumer.commit()

    async def commit_idle(self) -> None:
        """exactly_once: commit what was read (Faust's commit, guarded), then transactions holding only ticks."""
        if not self.exactly_once or not self.open:
            return
        await self.app.consumer.commit()
        if self.open:
            async with self.all_stages():
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
                await self.flush_all()
                await self.commit_open()

    async def ack(self, batch: list) -> None:
        """Submit a batch's records, then mark its offsets committable, while its stage lock is held:
        a commit then carries either the whole batch (offsets and outputs) or none of it."""
        await self.flush_batches()
        if batch and patches.ack(self.app.consumer, batch):
            self.acked_uncommitted = True
