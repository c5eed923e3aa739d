"""Rollup records read back from Kafka, for the tests and the chaos drill: a topic read to its end,
what identifies a record, and the version a consumer keeps."""
from __future__ import annotations

from ..core.publish import record_identity as record_key  # noqa: F401 - the tests and the drill take it from here


async def read_all(bootstrap: str, topic: str, quiet_ms: int = 3000,
                   isolation_level: str = "read_uncommitted", security: dict | None = None) -> list[tuple[bytes, bytes]]:
    """Every message (key, value) of ``topic`` until none arrives for ``quiet_ms``; ``security``: aiokafka
    options (processor.topics.aiokafka_security) for a broker that wants TLS or SASL."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, isolation_level=isolation_level,
                                **(security or {}))
    await consumer.start()
    out = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=quiet_ms)
            if not batch:
                return out
            for records in batch.values():
                out.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()


def latest(records: list[dict]) -> dict[tuple, dict]:
    """The record consumers keep: the highest version per record key (queue_interval: queue, channel, interval)."""
    best: dict[tuple, dict] = {}
    for r in records:
        key = record_key(r)
        if key not in best or r["version"] > best[key]["version"]:
            best[key] = r
    return best
