"""After the seek that ends a recovery, every partition is read again from its committed offset, or
from its start when nothing is committed (processor/worker/patches.py `rewind_uncommitted`).

The worker drops what its stages are handed between a rebuild and that seek, as fetched before the
seek and coming again after it (processor/offset_guard.py). aiokafka's `seek_to_committed` seeks
only partitions with a committed offset above 0: the others stayed where their fetch got to, and
what was dropped never came again (issue 24, chaos drill seed 24).
"""
from __future__ import annotations

import asyncio
import uuid

import pytest

from processor.worker.offsets import rewind_uncommitted

pytestmark = pytest.mark.integration


async def _read_all(consumer, want: int, timeout_s: float = 20) -> dict[int, list[int]]:
    """partition -> offsets read, until `want` records or the timeout."""
    got: dict[int, list[int]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while sum(map(len, got.values())) < want and loop.time() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            got.setdefault(tp.partition, []).extend(r.offset for r in records)
    return got


async def _scenario(bootstrap: str) -> tuple[dict, dict, dict]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    topic, group = f"seek-{uuid.uuid4().hex[:8]}", f"seek-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(3):
            for i in range(10):
                await producer.send(topic, b"m%d" % i, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        first = await _read_all(consumer, 30)  # everything fetched: what a stage drops while held
        # partition 0: nothing committed; partition 1: offset 0 committed; partition 2: offset 6
        await consumer.commit({TopicPartition(topic, 1): OffsetAndMetadata(0, ""),
                               TopicPartition(topic, 2): OffsetAndMetadata(6, "")})
        committed = await consumer.seek_to_committed()  # what Faust's perform_seek calls
        async def seek_wait(offsets: dict) -> None:  # (the worker's is Faust's Consumer.seek_wait)
            for tp, offset in offsets.items():
                consumer.seek(tp, offset)

        rewound = await rewind_uncommitted(seek_wait, {(tp.topic, tp.partition): o for tp, o in committed.items()})
        again = await _read_all(consumer, 10 + 10 + 4)
        return first, {tp.partition: o for tp, o in committed.items()}, {
            "again": again, "rewound": sorted(tp.partition for tp in rewound)}
    finally:
        await consumer.stop()


def test_after_the_seek_to_committed_offsets_every_partition_is_read_again_from_there_or_from_its_start(kafka):
    first, committed, after = asyncio.run(_scenario(kafka.bootstrap))
    assert {p: sorted(o) for p, o in first.items()} == {p: list(range(10)) for p in range(3)}
    assert committed == {0: None, 1: 0, 2: 6}
    assert after["rewound"] == [0, 1]
    assert {p: sorted(o) for p, o in after["again"].items()} == {0: list(range(10)), 1: list(range(10)),
                                                                   2: [6, 7, 8, 9]}
