"""The stall watch finds partitions whose fetched records Faust dropped, and seeks them back in the
consumer's thread (processor/worker/offsets.py StallWatch, seek_back)."""
from __future__ import annotations

import asyncio


def test_a_partition_fetched_ahead_of_what_was_delivered_is_sought_back_once_it_stays_so():
    from processor.worker.offsets import StallWatch

    watch = StallWatch(checks=3)
    tp = ("events", 2)
    # Faust delivered up to 620 and the agent handled 629 (repeats), aiokafka fetched up to 1094.
    assert watch.check(tp, 1095, 620, 629) is None
    assert watch.check(tp, 1095, 620, 629) is None
    assert watch.check(tp, 1095, 620, 629) == 621
    assert watch.check(tp, 1095, 620, 629) is None  # sought once for that state: no seek on every check


def test_progress_or_a_caught_up_partition_is_not_a_stall():
    from processor.worker.offsets import StallWatch

    watch = StallWatch(checks=2)
    tp = ("events", 0)
    # Under back-pressure the delivered offset waits while the agent works through its buffer.
    for handled in range(100, 110):
        assert watch.check(tp, 500, 300, handled) is None
    assert [watch.check(tp, 301, 300, 300) for _ in range(5)] == [None] * 5  # next to fetch = next to deliver
    assert [watch.check(tp, None, 300, 300) for _ in range(5)] == [None] * 5  # position unknown
    assert [watch.check(tp, 500, None, None) for _ in range(5)] == [None] * 5  # nothing delivered since the seek


def test_a_new_stall_after_a_seek_is_sought_again_and_revoked_partitions_are_forgotten():
    from processor.worker.offsets import StallWatch

    watch = StallWatch(checks=2)
    a, b = ("facts", 0), ("facts", 1)
    assert [watch.check(a, 50, 10, 10) for _ in range(2)] == [None, 11]
    assert [watch.check(a, 80, 60, 60) for _ in range(2)] == [None, 61]  # later, another drop
    assert [watch.check(b, 9, 3, 3) for _ in range(1)] == [None]
    watch.forget({a})
    assert watch.check(b, 9, 3, 3) is None  # counting starts again for b
    assert watch.check(b, 9, 3, 3) == 4


def test_a_stalled_partition_is_sought_in_the_consumer_thread():
    """StallWatch's seek-back went through Faust's `Consumer.seek`, which calls aiokafka's `seek`
    from the event loop's thread while the fetcher runs in the consumer's thread (the race of
    fault I: a KeyError in aiokafka's fetched_records). Faust's real consumer methods over a
    consumer thread that records where aiokafka's seek ran."""
    import threading
    from collections import defaultdict
    from types import SimpleNamespace

    from faust.transport.drivers.aiokafka import Consumer
    from faust.types import TP

    from processor.worker.offsets import seek_back

    class ConsumerThread:  # Faust's AIOKafkaConsumerThread: seek_wait runs in its own thread
        def __init__(self) -> None:
            self.seeks = []

        def seek(self, tp, offset) -> None:  # aiokafka's seek, wherever it is called from
            self.seeks.append((tp, offset, threading.current_thread() is threading.main_thread()))

        async def seek_wait(self, partitions) -> None:
            def in_thread() -> None:
                for tp, offset in partitions.items():
                    self.seek(tp, offset)
            await asyncio.get_running_loop().run_in_executor(None, in_thread)

    consumer = Consumer.__new__(Consumer)
    consumer._thread, consumer._read_offset = ConsumerThread(), defaultdict(lambda: None)
    consumer.log = SimpleNamespace(dev=lambda *args: None)
    tp = TP("facts", 1)
    asyncio.run(seek_back(consumer, tp, 621))
    assert consumer._thread.seeks == [(tp, 621, False)]  # not from the event loop's (main) thread
    asyncio.run(Consumer.seek(consumer, tp, 621))  # what resume_stalled_fetches called before
    assert consumer._thread.seeks[-1] == (tp, 621, True)
