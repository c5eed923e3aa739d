"""The worker's outputs go to the producer as record batches (processor/worker/output.py Output)."""
from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from processor.worker.output import Output


class FakeAioProducer:
    """The two aiokafka calls Output uses, recording what reached the broker side."""

    def __init__(self, batch_size: int, slow: asyncio.Event | None = None, acked: bool = True,
                 jitter: random.Random | None = None) -> None:
        self.batch_size, self.slow, self.acked = batch_size, slow, acked  # acked=False: the broker has not answered
        self.jitter = jitter  # each send waits a random while: concurrent senders may overtake one another
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
        self.futures: list[asyncio.Future] = []
        self.waiting = 0  # send_batch calls waiting for `slow`

    def create_batch(self):
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch, topic, *, partition):
        if self.slow is not None:
            self.waiting += 1
            await self.slow.wait()  # the accumulator waits for the previous batch of the partition
            self.waiting -= 1
        if self.jitter is not None:
            await asyncio.sleep(self.jitter.random() / 1000)
        records = [(r.key, r.value) for r in DefaultRecordBatch(bytes(batch._build()))]
        self.sent.append((topic, partition, records))
        return self._future()

    async def send(self, topic, value, *, key, partition):
        if self.jitter is not None:
            await asyncio.sleep(self.jitter.random() / 1000)
        self.sent.append((topic, partition, [(key, value)]))
        return self._future()

    def _future(self):
        fut = asyncio.get_running_loop().create_future()
        if self.acked:
            fut.set_result(None)
        self.futures.append(fut)
        return fut


def _output(producer: FakeAioProducer) -> Output:
    flushed = []

    async def flush():
        flushed.append(True)

    faust_producer = SimpleNamespace(_ensure_producer=lambda: producer, flush=flush)
    app = SimpleNamespace(conf=SimpleNamespace(topic_partitions=4, id="t"), producer=faust_producer)
    return Output(app, {}, exactly_once=False, source_topic="in")


def _records(producer, topic, partition):
    return [kv for t, p, recs in producer.sent if (t, p) == (topic, partition) for kv in recs]


def test_records_wait_for_the_ack_and_keep_their_order_per_partition():
    async def main():
        producer = FakeAioProducer(batch_size=16384)
        out = _output(producer)
        for i in range(50):
            await out.send_record("changelog", 0, b"k%d" % i, b"v%d" % i, i % 2)
        assert producer.sent == []  # nothing before the stage acks its input
        await out.ack([])
        assert _records(producer, "changelog", 0) == [(b"k%d" % i, b"v%d" % i) for i in range(0, 50, 2)]
        assert _records(producer, "changelog", 1) == [(b"k%d" % i, b"v%d" % i) for i in range(1, 50, 2)]
        assert len(producer.sent) == 2  # one batch per partition

    asyncio.run(main())


def test_batches_not_acknowledged_yet_are_counted_as_in_flight():
    """kpi_output_batches_in_flight: a worker whose producer still holds output has not finished."""
    async def main():
        producer = FakeAioProducer(batch_size=300, acked=False)
        out = _output(producer)
        for i in range(20):
            await out.send_record("t", 0, b"k%d" % i, b"x" * 40, i % 2)
        await out.send_record("t", 0, b"big", b"y" * 5000, 3)  # alone, outside any batch
        await out.flush_batches()
        assert out.in_flight == len(producer.futures) > 3
        for fut in producer.futures:
            fut.set_result(None)
        await asyncio.sleep(0)  # the delivery callbacks run
        assert out.in_flight == 0

    asyncio.run(main())


def test_a_full_batch_goes_at_once_and_nothing_is_lost_or_reordered():
    async def main():
        producer = FakeAioProducer(batch_size=300)
        out = _output(producer)
        for i in range(100):
            await out.send_record("t", 0, b"key-%03d" % i, b"x" * 40, 2)
        assert len(producer.sent) > 3  # full batches were submitted before the ack
        await out.flush_batches()
        assert [k for k, _ in _records(producer, "t", 2)] == [b"key-%03d" % i for i in range(100)]

    asyncio.run(main())


def test_a_record_larger_than_a_batch_is_sent_alone():
    async def main():
        producer = FakeAioProducer(batch_size=200)
        out = _output(producer)
        await out.send_record("dead", 0, b"a", b"small", 1)
        await out.send_record("dead", 0, b"b", b"y" * 5000, 1)
        await out.flush_batches()
        assert [k for k, _ in _records(producer, "dead", 1)] == [b"a", b"b"]

    asyncio.run(main())


def test_a_batch_begun_by_another_stage_while_one_is_submitted_is_kept():
    async def main():
        gate = asyncio.Event()
        producer = FakeAioProducer(batch_size=300, slow=gate)
        out = _output(producer)

        async def stage(name: bytes, n: int):
            for i in range(n):
                await out.send_record("facts", 0, name + b"-%03d" % i, b"z" * 40, 3)

        one = asyncio.ensure_future(stage(b"one", 20))  # fills a batch, then waits in send_batch
        await asyncio.sleep(0.01)
        await stage(b"two", 2)                            # meanwhile another stage begins the next one
        gate.set()
        await one
        await out.flush_batches()
        keys = [k for k, _ in _records(producer, "facts", 3)]
        assert sorted(keys) == sorted([b"one-%03d" % i for i in range(20)] + [b"two-000", b"two-001"])
        assert [k for k in keys if k.startswith(b"one")] == [b"one-%03d" % i for i in range(20)]

    asyncio.run(main())


def test_appended_records_reach_the_producer_in_order_per_partition_whoever_submits():
    """A housekeeping slice appends without waiting, then submits; a stage's batch sends (and submits a
    batch it filled) meanwhile, and a commit flushes: per partition the producer must get the records
    in the order they were appended (a delete by housekeeping, then a write of the same key by the
    batch: reordered, recovery would lose the row). The producer here lets concurrent senders overtake."""
    async def main():
        producer = FakeAioProducer(batch_size=200, jitter=random.Random(7))
        out = _output(producer)
        seq = iter(range(10**6))

        def record(partition: int):
            n = next(seq)
            return b"k%d" % n, b"%07d" % n + b"x" * (3000 if n % 97 == 0 else 30), partition  # some larger than a batch

        async def housekeeping():
            for _ in range(15):
                for i in range(40):
                    out.append_record("changelog", 0, *record(i % 3))
                assert out.queued > 0
                await out.submit_queued()

        async def stage():
            for i in range(600):
                await out.send_record("changelog", 0, *record(i % 3))
                if i % 50 == 0:
                    await out.flush_batches()  # the stage's ack

        async def commits():
            for _ in range(30):
                await out.flush_batches()
                await asyncio.sleep(0.001)

        await asyncio.gather(housekeeping(), stage(), commits())
        await out.flush_batches()
        assert out.queued == 0
        total = 0
        for partition in range(3):
            numbers = [int(v[:7]) for _, v in _records(producer, "changelog", partition)]
            assert numbers == sorted(numbers)
            total += len(numbers)
        assert total == 15 * 40 + 600

    asyncio.run(main())


def test_a_flush_returns_only_once_a_batch_another_task_is_handing_over_is_in_the_producer():
    """A commit flushes, then commits what the producer holds: a batch that housekeeping took off its
    queue and is still handing over (the producer makes it wait) must be in it first."""
    async def main():
        gate = asyncio.Event()
        producer = FakeAioProducer(batch_size=300, slow=gate)
        out = _output(producer)
        for i in range(20):
            out.append_record("changelog", 0, b"k%d" % i, b"x" * 40, 1)
        handing_over = asyncio.ensure_future(out.submit_queued())
        await asyncio.sleep(0.01)
        assert producer.waiting == 1 and out.queued >= 1
        flush = asyncio.ensure_future(out.flush_batches())
        await asyncio.sleep(0.01)
        assert not flush.done() and producer.sent == []
        gate.set()
        await asyncio.wait_for(asyncio.gather(handing_over, flush), 1)
        assert [k for k, _ in _records(producer, "changelog", 1)] == [b"k%d" % i for i in range(20)]

    asyncio.run(main())


def test_a_batch_whose_submitter_was_cancelled_while_the_producer_made_it_wait_goes_with_the_next_flush():
    """A timer or an agent cancelled (the worker stops) while waiting for the producer: the batch it was
    handing over stays queued, and the flush before the last commit hands it over, in order."""
    async def main():
        gate = asyncio.Event()
        producer = FakeAioProducer(batch_size=300, slow=gate)
        out = _output(producer)
        for i in range(20):
            out.append_record("changelog", 0, b"k%d" % i, b"x" * 40, 2)
        queued = out.queued
        handing_over = asyncio.ensure_future(out.submit_queued())
        await asyncio.sleep(0.01)
        handing_over.cancel()
        await asyncio.gather(handing_over, return_exceptions=True)
        assert out.queued == queued > 0 and producer.sent == []
        gate.set()
        await out.flush_batches()
        assert out.queued == 0
        assert [k for k, _ in _records(producer, "changelog", 2)] == [b"k%d" % i for i in range(20)]

    asyncio.run(main())


def test_an_undelivered_record_fails_the_flush_before_a_commit():
    async def main():
        from faust.exceptions import ProducerSendError

        producer = FakeAioProducer(batch_size=16384)
        out = _output(producer)
        await out.send_record("t", 0, b"k", b"v", 0)
        await out.flush_batches()
        failed = asyncio.get_running_loop().create_future()
        failed.add_done_callback(out._delivered)
        failed.set_exception(OSError("broker gone"))
        await asyncio.sleep(0)
        with pytest.raises(ProducerSendError):
            await out.app.producer.flush()  # what Faust calls before it commits offsets

    asyncio.run(main())


def test_delivered_returns_once_every_record_handed_over_is_acknowledged():
    """at_least_once: stage two sends the rows that say a record was published only after the
    record is acknowledged (chaos drill seed 24309: rows delivered, records lost in a SIGKILL)."""
    async def main():
        producer = FakeAioProducer(batch_size=300, acked=False)
        out = _output(producer)
        for i in range(10):
            await out.send_record("rollups", 0, b"k%d" % i, b"x" * 40, i % 4)
        waiter = asyncio.ensure_future(out.delivered())
        await asyncio.sleep(0.01)
        assert producer.futures and not waiter.done()  # handed over (collected batches too), not acknowledged
        for fut in producer.futures[:-1]:
            fut.set_result(None)
        await asyncio.sleep(0.01)
        assert not waiter.done()
        producer.futures[-1].set_result(None)
        await asyncio.wait_for(waiter, 1)

    asyncio.run(main())


def test_delivered_raises_when_a_record_was_not_delivered():
    async def main():
        from faust.exceptions import ProducerSendError

        producer = FakeAioProducer(batch_size=16384, acked=False)
        out = _output(producer)
        await out.send_record("rollups", 0, b"k", b"v", 0)
        waiter = asyncio.ensure_future(out.delivered())
        await asyncio.sleep(0.01)
        producer.futures[0].set_exception(OSError("broker gone"))
        with pytest.raises(ProducerSendError):
            await asyncio.wait_for(waiter, 1)

    asyncio.run(main())


def test_every_persisted_value_loads_back_as_json_would_load_it():
    """tables.dumps (orjson) must not change what a restart restores: no NaN/infinity, same keys."""
    import json

    from processor.config import Settings
    from processor.core.pipeline import Pipeline
    from processor.decode import decode
    from processor.simulator import Simulation, dumps, sorted_events
    from processor.worker import tables

    pipe = Pipeline(Settings().engine())
    checked = 0
    events = sorted_events(Simulation(seed=11, start=1_763_884_800, duration_seconds=3 * 3600))
    for i, ev in enumerate(events):
        pipe.feed(decode(dumps(ev).encode(), 10**15))
        if i % 50 == 0 or i == len(events) - 1:
            c, q = pipe.contacts, pipe.queues
            for dirty in (*c.take_dirty(), c.take_dirty_profiles(), c.take_dirty_customers(),
                          c.take_dirty_agent_ids(), *q.take_dirty(), pipe.journeys.take_dirty()):
                for key, value in dirty.items():
                    row = [key, [0, value]]
                    assert json.loads(tables.dumps(row)) == json.loads(json.dumps(row)), row
                    checked += 1
    assert checked > 1000


def test_exactly_once_a_fenced_transactional_producer_stops_the_worker():
    """faust-streaming catches ProducerFenced in begin/commit/abort_transaction and drops the producer:
    Output.guard_fences turns that into a crash of the worker (issue 24's chaos drill)."""
    from aiokafka.errors import ProducerFenced

    async def main():
        crashed = []
        transaction_producers = {"t-0-0": object(), "t-0-1": object()}

        async def faust_commit_transaction(tid):  # what Faust does on a fence: logs, drops, returns
            if tid == "t-0-1":
                transaction_producers.pop(tid)

        async def crash(exc):
            crashed.append(exc)

        faust_producer = SimpleNamespace(_transaction_producers=transaction_producers,
                                         begin_transaction=faust_commit_transaction,
                                         commit_transaction=faust_commit_transaction,
                                         abort_transaction=faust_commit_transaction)
        app = SimpleNamespace(conf=SimpleNamespace(topic_partitions=4, id="t"), producer=faust_producer, crash=crash,
                              rebalancing=False)
        out = Output(app, {}, exactly_once=True, source_topic="in")
        out.guard_fences()
        await faust_producer.commit_transaction("t-0-0")  # not fenced: nothing happens
        assert crashed == []
        with pytest.raises(ProducerFenced):
            await faust_producer.commit_transaction("t-0-1")
        assert len(crashed) == 1 and isinstance(crashed[0], ProducerFenced)

        # In a rebalance a fence is the hand-over of a partition that moved: the worker goes on,
        # unless that partition is assigned to it again (Faust begins its transaction then).
        crashed.clear()
        app.rebalancing = True
        transaction_producers["t-0-1"] = object()
        await faust_producer.commit_transaction("t-0-1")
        assert crashed == [] and out.fenced_in_rebalance == {"t-0-1"}
        await faust_producer.begin_transaction("t-0-0")
        assert crashed == []
        with pytest.raises(ProducerFenced):
            await faust_producer.begin_transaction("t-0-1")
        assert len(crashed) == 1

    asyncio.run(main())


def test_exactly_once_transactional_ids_do_not_depend_on_the_metadata_of_a_rebalance():
    """Faust numbers topic groups by partition count per rebalance: without the assignor's own
    one-partition topic in the metadata, the co-partitioned topics became group 0 instead of 1 and
    every transactional id changed (issue 24's chaos drill)."""
    import faust
    from faust.assignor.partition_assignor import PartitionAssignor

    app = faust.App("tids", broker="kafka://127.0.0.1:1")
    leader = "tids-__assignor-__leader"
    out = Output(app, {}, exactly_once=True, source_topic="events")
    ids = []
    for groups in ({leader: 0, "events": 1, "facts": 1}, {"events": 0, "facts": 0}):  # full, then leader topic missing
        app.assignor._topic_groups = dict(groups)
        assert PartitionAssignor.group_for_topic(app.assignor, "events") == groups["events"]  # Faust's own numbering
        out.stable_transaction_groups(leader, 4)
        ids.append([out.transactional_id(p) for p in range(4)])
    assert ids[0] == ids[1] == ["tids-1-0", "tids-1-1", "tids-1-2", "tids-1-3"]
    assert app.assignor.group_for_topic(leader) == 0



class _Txn:
    """Faust's transactional producer as Output and Faust's commit see it: what was committed, in order."""

    def __init__(self, tids) -> None:
        self._transaction_producers = {tid: FakeAioProducer(batch_size=16384) for tid in tids}
        self.log: list = []  # ("offsets", {tid: {partition: offset}}) and ("transaction", tid)

    async def flush(self) -> None:
        pass

    async def commit_transaction(self, tid) -> None:
        self.log.append(("transaction", tid))

    async def begin_transaction(self, tid) -> None:
        pass


def _exactly_once_worker():
    """A Faust app's real consumer (acks, committed offsets, its commit) with Output guarding its commits;
    the broker side is recorded, not sent."""
    import faust
    from faust.types import TP

    app = faust.App("h", broker="kafka://127.0.0.1:1", processing_guarantee="exactly_once")
    app.in_worker = True  # Faust commits through transactions only inside a worker
    locks = {name: asyncio.Lock() for name in ("one", "two", "journeys")}
    out = Output(app, locks, exactly_once=True, source_topic="in")
    out.stable_transaction_groups("h-__assignor-__leader", 4)
    txn = app._producer = _Txn([out.transactional_id(p) for p in range(4)])
    consumer = app.consumer
    tp0 = TP("in", 0)
    consumer.assignment = lambda: {tp0}

    async def faust_commit_transactions(offsets, start_new_transaction=True):  # Faust's TransactionManager.commit
        txn.log.append(("offsets", {out.transactional_id(tp.partition): {tp.partition: o} for tp, o in offsets.items()}))
        return True

    consumer.transactions.commit = faust_commit_transactions
    return app, out, txn, locks


def _records_of(partition: int, offsets):
    return [SimpleNamespace(topic="in", partition=partition, offset=o) for o in offsets]


def test_exactly_once_a_commit_carries_the_offsets_of_the_batch_it_waited_for():
    """Fault H: Faust computes the offsets to commit, then the guarded commit waits for the batch in
    progress, whose outputs join the transaction; its offsets must join too, or a restart applies
    it again (a dead letter committed twice in the chaos drill). And Faust must go on committing
    afterwards (a copy of the offsets made it stop committing the partition: the drill stalled)."""
    async def main():
        app, out, txn, locks = _exactly_once_worker()
        consumer = app.consumer
        await out.send_record("dead", 0, b"k", b"first", 0)
        await out.ack(_records_of(0, range(0, 10)))
        await _while_a_batch_runs(out, locks["one"], range(10, 15), consumer.commit())  # Faust takes offsets up to 10, then waits
        assert txn.log == [("offsets", {"h-1-0": {0: 15}})]  # with the dead letter's offsets, not 10
        await out.ack(_records_of(0, range(15, 20)))
        await consumer.commit()
        assert txn.log[-1] == ("offsets", {"h-1-0": {0: 20}})  # and Faust goes on committing

    asyncio.run(main())


def test_exactly_once_a_tick_commit_never_commits_a_batch_without_its_offsets():
    """The tick commits transactions holding only clock ticks; a batch that ends while it waits for
    the locks has its outputs in those transactions and its offsets not committed yet: they wait
    for Faust's next commit, which carries both (fault H)."""
    async def main():
        app, out, txn, locks = _exactly_once_worker()
        consumer = app.consumer
        await out.send_record("facts", 0, b"", b"tick", 1)  # a tick: an open transaction, nothing acked
        await out.commit_idle()
        assert txn.log == [("transaction", "h-1-0")]
        txn.log.clear()

        await out.send_record("facts", 0, b"", b"tick", 1)
        await _while_a_batch_runs(out, locks["two"], range(0, 5), out.commit_idle())  # nothing acked yet: Faust commits nothing; waits for the locks
        assert txn.log == []  # the dead letter is not committed without its offsets
        await consumer.commit()
        assert txn.log == [("offsets", {"h-1-0": {0: 5}})]  # both, in one transaction

    asyncio.run(main())


def test_offsets_read_again_without_a_record_do_not_stop_the_commits():
    """The consumer skipped offsets 22..30 of a partition whose commit markers sit at 23, 25, 26, 28
    and 30; the stage read the records again and acked them. Faust commits only up to a hole of
    more than one offset: without the markers recorded as gaps it stopped at 25 for good (chaos
    drill seed 12007: the tick then held the transactions open, and every reader waited)."""
    from processor.worker.patches import pass_empty_offsets

    async def main():
        app, out, txn, locks = _exactly_once_worker()
        consumer = app.consumer
        await out.ack(_records_of(0, [20, 21]))
        await consumer.commit()
        read_again = _records_of(0, [22, 24, 27, 29])
        await pass_empty_offsets(consumer, "in", 0, 22, 31, read_again)
        await out.ack(read_again + _records_of(0, range(31, 35)))
        for _ in range(3):
            await consumer.commit()
        assert txn.log[-1] == ("offsets", {"h-1-0": {0: 35}})

    asyncio.run(main())


def test_exactly_once_the_tick_commits_the_transactions_when_acked_offsets_stay_uncommittable(monkeypatch):
    """Offsets acked behind a hole Faust does not pass must not hold the tick's transactions open for
    good: read_committed readers of those partitions would wait behind them."""
    import processor.worker.output

    monkeypatch.setattr(processor.worker.output, "IDLE_COMMIT_WAIT", 0.05)

    async def main():
        app, out, txn, locks = _exactly_once_worker()
        await out.ack(_records_of(0, [0, 1]))
        await app.consumer.commit()
        await out.send_record("facts", 0, b"", b"tick", 1)
        await out.ack(_records_of(0, [5, 6]))  # 2..4 never acked: Faust commits nothing
        await out.commit_idle()
        assert txn.log[-1] == ("offsets", {"h-1-0": {0: 2}})  # left open for now
        await asyncio.sleep(0.06)
        await out.commit_idle()
        assert txn.log[-1] == ("transaction", "h-1-0")

    asyncio.run(main())


def test_exactly_once_the_commit_at_a_rebalance_waits_for_the_batch_in_progress():
    """Chaos drill seed 28001: a rebalance began while a batch (with a dead letter) had acked nothing
    yet; Faust's commit found no offsets and committed nothing, so the open transaction outlived the
    rebalance and the batch was applied again into it after the seek (the dead letter twice)."""
    async def main():
        app, out, txn, locks = _exactly_once_worker()
        await _while_a_batch_runs(out, locks["one"], range(0, 7), out.commit_before_rebalance())
        assert txn.log == [("offsets", {"h-1-0": {0: 7}})]  # the batch's offsets, with its dead letter

    asyncio.run(main())


async def _while_a_batch_runs(out, lock, acked: range, during) -> None:
    """A stage's batch in progress (its lock held; a dead letter sent and `acked` acked at its end)
    while `during` (a coroutine) starts; then the batch ends, and `during` is awaited."""
    started, may_end = asyncio.Event(), asyncio.Event()

    async def batch():
        async with lock:
            started.set()
            await may_end.wait()
            await out.send_record("dead", 0, b"k", b"dead letter", 0)
            await out.ack(_records_of(0, acked))

    running = asyncio.ensure_future(batch())
    await started.wait()
    other = asyncio.ensure_future(during)
    await asyncio.sleep(0.01)
    may_end.set()
    await running
    await other
