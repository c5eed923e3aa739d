"""The worker's Output against Apache Kafka: records appended by several tasks at once reach each
partition in the order they were appended (processor/worker/output.py)."""
from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

from processor.worker.output import Output

PARTITIONS = 3


async def _scenario(bootstrap: str) -> tuple[dict[int, list[int]], int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"output-order-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    # Small batches: many of them, and the producer's one pending batch per partition makes
    # submitters wait (its backpressure), as during a catch-up.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=1024, linger_ms=0)
    await producer.start()
    try:
        faust_producer = SimpleNamespace(_ensure_producer=lambda: producer, flush=producer.flush)
        app = SimpleNamespace(conf=SimpleNamespace(topic_partitions=PARTITIONS, id="order"), producer=faust_producer)
        out = Output(app, {}, exactly_once=False, source_topic="in")
        seq = iter(range(10**9))

        def record(i: int):
            n = next(seq)  # the order of appending, across every task
            return b"k%d" % (i % 50), b"%09d" % n + b"x" * (2000 if n % 101 == 0 else 60), i % PARTITIONS

        async def housekeeping():  # a slice appends under its lock without waiting, then submits
            for _ in range(40):
                for i in range(250):
                    out.append_record(topic, 0, *record(i))
                await out.submit_queued()

        async def stage():  # a batch sends (a batch it fills goes at once), then acks (flushes)
            for i in range(6000):
                await out.send_record(topic, 0, *record(i))
                if i % 400 == 399:
                    await out.flush_batches()

        async def commits():  # Faust's commit flushes every batch meanwhile
            for _ in range(50):
                await out.flush_batches()
                await asyncio.sleep(0.01)

        await asyncio.gather(housekeeping(), stage(), commits())
        await out.delivered()
        sent = next(seq)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    got: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while sum(map(len, got.values())) < sent and loop.time() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                got[tp.partition].extend(int(r.value[:9]) for r in records)
    finally:
        await consumer.stop()
    return got, sent


def test_records_appended_and_submitted_by_concurrent_tasks_keep_their_order_per_partition(kafka):
    """Housekeeping appends a slice's deletions and submits them after releasing its lock, while the
    stage's batch sends and the commit flushes: per partition the broker must hold them in append
    order (a delete, then a new write of the same key, reordered: recovery would lose the row)."""
    got, sent = asyncio.run(_scenario(kafka.bootstrap))
    assert sent == 40 * 250 + 6000
    assert sorted(n for numbers in got.values() for n in numbers) == list(range(sent))  # each once
    for partition, numbers in got.items():
        assert numbers == sorted(numbers), partition
