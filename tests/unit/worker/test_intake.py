"""Fetched records handed to the stages in lists keep Faust's per-message semantics (processor/worker/intake.py)."""
from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord, TopicPartition
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from mode import Service

from processor.worker import patches
from processor.worker.intake import Intake
from processor.worker.patches import drain_in_lists


def rec(topic: str, partition: int, offset: int, value: bytes = b"{}") -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", value, None, 1, len(value), ())


def test_take_hands_over_whole_lists_in_arrival_order_and_drops_older_generations():
    async def main():
        box = Intake(maxsize=100)
        box.put_nowait(1, [rec("t", 0, 0), rec("t", 0, 1)])
        box.put_nowait(2, [rec("t", 1, 5)])
        box.put_nowait(2, [rec("t", 0, 2), rec("t", 0, 3)])
        box.put_nowait(2, [rec("t", 1, 6)])
        assert len(box) == 6
        got = await box.take(lambda: 2, limit=3)  # lists of generation 1 are gone; whole lists up to the limit
        assert [(r.partition, r.offset) for r in got] == [(1, 5), (0, 2), (0, 3)]
        got = await box.take(lambda: 2, limit=3)
        assert [(r.partition, r.offset) for r in got] == [(1, 6)]
        assert len(box) == 0

    asyncio.run(main())


def test_take_waits_for_records_and_clear_empties_the_intake():
    async def main():
        box = Intake(maxsize=2)
        taker = asyncio.ensure_future(box.take(lambda: 0, limit=10))
        await asyncio.sleep(0.01)
        assert not taker.done()
        box.put_nowait(0, [rec("t", 0, 0), rec("t", 0, 1)])
        assert box.full()
        assert [r.offset for r in await taker] == [0, 1]
        assert not box.full()
        box.put_nowait(0, [rec("t", 0, 2), rec("t", 0, 3), rec("t", 0, 4)])
        waiter = asyncio.ensure_future(box.wait_for_room())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        box.clear()  # partitions revoked
        await asyncio.wait_for(waiter, 1)
        assert len(box) == 0
        taker = asyncio.ensure_future(box.take(lambda: 0, limit=10))
        await asyncio.sleep(0.01)
        assert not taker.done()  # nothing left from before the clear
        taker.cancel()

    asyncio.run(main())


class _AckConsumer:
    """The bookkeeping Consumer.ack works on."""

    def __init__(self) -> None:
        self._committed_offset = defaultdict(lambda: None)
        self._acked_index = defaultdict(set)
        self._acked = defaultdict(list)
        self._unacked_messages = set()
        self._n_acked = 0
        self._waiting_for_ack = None
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
                                   monitor=SimpleNamespace(stream_inbound_time={}))


def test_ack_of_a_list_books_exactly_what_faust_acks_one_message_at_a_time():
    records = [rec("a", 0, o) for o in (3, 4, 5)] + [rec("b", 1, 9), rec("a", 0, 5), rec("a", 1, 1), rec("a", 0, 2)]
    ours, faust = _AckConsumer(), _AckConsumer()
    for c in (ours, faust):
        c._committed_offset[TopicPartition("a", 0)] = 3  # offset 2 is committed already: not acked again
    assert patches.ack(ours, records) == 5
    class Message(SimpleNamespace):
        __hash__ = object.__hash__

    for r in records:
        FaustConsumer.ack(faust, Message(acked=False, topic=r.topic, offset=r.offset, tp=TP(r.topic, r.partition)))
    assert dict(ours._acked) == dict(faust._acked)
    assert dict(ours._acked_index) == dict(faust._acked_index)
    assert ours._n_acked == faust._n_acked == 5
    assert all(type(tp) is TopicPartition for tp in ours._acked)  # aiokafka refuses other keys at commit
    # the streams count as moving for Faust's event-path check (else ERROR logs after 5 minutes)
    inbound = ours.app.monitor.stream_inbound_time
    assert {TP(*tp) for tp in inbound} == {TP("a", 0), TP("b", 1), TP("a", 1)}
    assert inbound.get(TP("a", 0)) is not None  # Faust looks it up with its own TP


class _FetchConsumer(Service):
    """What the fetch loop uses of Faust's consumer, with scripted fetches."""

    def __init__(self, fetches: list, intakes: dict, acks_enabled: bool = True) -> None:
        super().__init__()
        self.fetches = fetches
        self.delivered: list = []
        self.gaps: list = []
        self.suspend_flow = asyncio.Event()
        self._read_offset = defaultdict(lambda: None)
        self._buffered_partitions: set = set()
        self._commit_every = None
        self._n_acked = 0
        self.flow_active = True
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.consumer_stopped_errors = ()
        self.app = SimpleNamespace(
            _kpi_intakes=intakes, consumer_generation_id=7,
            topics=SimpleNamespace(acks_enabled_for=lambda topic: acks_enabled),
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, offset: None))

    async def callback(self, message) -> None:
        self.delivered.append(message)

    def _to_message(self, tp, record):
        return ("message", tp, record.offset)

    def highwater(self, tp) -> int:
        return 100

    async def _add_gap(self, tp, start: int, end: int) -> None:
        self.gaps.append((tp.topic, tp.partition, start, end))

    async def _wait_next_records(self, timeout: float):
        if not self.fetches:
            await self.stop()
            return None, None
        return self.fetches.pop(0)


def _run_fetch_loop(consumer: _FetchConsumer) -> None:
    async def main():
        fetcher = Service()
        await drain_in_lists(consumer, fetcher)

    asyncio.run(main())


def test_the_fetch_loop_hands_each_partitions_records_over_as_one_list():
    a0, a1, c0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("changelog", 0)
    box = Intake()
    fetches = [
        ({a0: [rec("a", 0, o) for o in range(3)], a1: [rec("a", 1, 5)], c0: [rec("changelog", 0, 4), rec("changelog", 0, 5)]},
         {a0, a1, c0}),
        # a0 again from offset 1: 0 and 1 are dropped, 2 (the last read) is handed over again as Faust does
        # (its read offset is the next one to read right after a seek); a1 with a jump (a transaction marker)
        ({a0: [rec("a", 0, o) for o in range(1, 5)], a1: [rec("a", 1, 7), rec("a", 1, 8), rec("a", 1, 10)]}, {a0, a1}),
        # a partition not active (paused) is not handed over
        ({a0: [rec("a", 0, 5)]}, {a1}),
    ]
    consumer = _FetchConsumer(fetches, {"a": box})
    _run_fetch_loop(consumer)
    lists = list(box._lists)
    assert [(g, [(r.partition, r.offset) for r in rs]) for g, rs in lists] == [
        (7, [(0, 0), (0, 1), (0, 2)]), (7, [(1, 5)]), (7, [(0, 2), (0, 3), (0, 4)]), (7, [(1, 7), (1, 8), (1, 10)])]
    assert consumer.delivered == [("message", c0, 4), ("message", c0, 5)]  # Faust's path, message by message
    assert consumer.gaps == [("a", 1, 6, 7), ("a", 1, 9, 10)]  # offsets 6 and 9 count as acked when Faust commits
    assert consumer._read_offset[a0] == 4 and consumer._read_offset[a1] == 10 and consumer._read_offset[c0] == 5


def test_the_fetch_loop_stops_handing_over_when_the_generation_changes():
    a0, a1 = TopicPartition("a", 0), TopicPartition("a", 1)
    box = Intake()
    consumer = _FetchConsumer([], {"a": box})

    class Records(dict):
        def items(self):
            for i, item in enumerate(super().items()):
                if i == 1:
                    consumer.app.consumer_generation_id += 1  # a rebalance between two partitions
                yield item

    consumer.fetches = [(Records({a0: [rec("a", 0, 0)], a1: [rec("a", 1, 0)]}), {a0, a1})]
    _run_fetch_loop(consumer)
    assert [[r.offset for r in rs] for _, rs in box._lists] == [[0]]
    assert consumer._read_offset[a1] is None  # not marked read: Faust seeks back to the committed offset
