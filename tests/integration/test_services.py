"""The project's service launchers start real, working components.

Each component is started once per module; the whole file takes well under
two minutes once the Kafka jars are cached (the first run fetches them with
Maven, see scripts/setup.sh).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from processor.services import (
    ApacheKafka,
    PrometheusServer,
    RedisServer,
    TansuBroker,
    free_port,
)

pytestmark = pytest.mark.integration


# -- helpers -----------------------------------------------------------------------
async def _produce(bootstrap: str, topic: str, *values: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"k")
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, n: int, *, group: str | None, timeout: float = 30) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(r.value for r in records)
        if group is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return got


def _roundtrip(bootstrap: str, topic: str, value: bytes, *, group: str | None = None) -> list[bytes]:
    async def go() -> list[bytes]:
        await _produce(bootstrap, topic, value)
        return await _consume(bootstrap, topic, 1, group=group)

    return asyncio.run(go())


# -- Apache Kafka (the session broker from conftest.py) ----------------------------------
def test_apache_kafka_produce_consume(kafka):
    topic = f"t-{uuid.uuid4().hex[:8]}"
    assert _roundtrip(kafka.bootstrap, topic, b"hello kafka", group="g1") == [b"hello kafka"]


def test_apache_kafka_keeps_data_across_stop_and_kill(kafka):
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    asyncio.run(_produce(kafka.bootstrap, topic, b"before-restart"))

    kafka.stop()
    assert not kafka.running
    t0 = time.monotonic()
    kafka.start()
    print(f"\nApache Kafka restarted after stop in {time.monotonic() - t0:.1f}s")
    assert asyncio.run(_consume(kafka.bootstrap, topic, 1, group=None)) == [b"before-restart"]

    # A crash (kill -9) must not lose acknowledged data or need a reformat.
    asyncio.run(_produce(kafka.bootstrap, topic, b"before-kill"))
    kafka.kill()
    assert not kafka.running
    t0 = time.monotonic()
    kafka.start()
    print(f"Apache Kafka restarted after kill -9 in {time.monotonic() - t0:.1f}s")
    got = asyncio.run(_consume(kafka.bootstrap, topic, 2, group=None))
    assert got == [b"before-restart", b"before-kill"]


# -- Tansu ------------------------------------------------------------------------------
def test_tansu_produce_consume():
    t0 = time.monotonic()
    with TansuBroker() as tansu:
        print(f"\nTansu ready at {tansu.bootstrap} in {time.monotonic() - t0:.2f}s")
        topic = f"t-{uuid.uuid4().hex[:8]}"
        assert _roundtrip(tansu.bootstrap, topic, b"hello tansu", group="g1") == [b"hello tansu"]
    assert not tansu.running


# -- Redis ------------------------------------------------------------------------------
@pytest.mark.parametrize("password", [None, "s3cret:/@"])
def test_redis_ping_set_get(password):
    import redis

    t0 = time.monotonic()
    with RedisServer(password=password) as server:
        print(f"\nRedis ready at {server.url} in {time.monotonic() - t0:.2f}s")
        client = redis.Redis.from_url(server.url)
        try:
            assert client.ping() is True
            assert client.set("kpi:answer", "42") is True
            assert client.get("kpi:answer") == b"42"
        finally:
            client.close()
        if password is not None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            with pytest.raises(redis.AuthenticationError):
                redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0)).ping()
    assert not server.running


# -- Prometheus -------------------------------------------------------------------------
def test_prometheus_scrapes_target():
    from prometheus_client import CollectorRegistry, Counter, start_http_server

    registry = CollectorRegistry()
    counter = Counter("kpi_test_events", "events seen by the test", registry=registry)
    counter.inc(3)
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        t0 = time.monotonic()
        with PrometheusServer([f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
            print(f"\nPrometheus ready at {prom.url} in {time.monotonic() - t0:.2f}s")
            up = prom.wait_for('up{job="kpi"}', lambda r: bool(r) and r[0]["value"][1] == "1", timeout=30)
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            vector = prom.query("up")
            assert isinstance(vector, list) and vector
            assert {"metric", "value"} <= set(vector[0])
            total = prom.query("kpi_test_events_total")
            assert float(total[0]["value"][1]) == 3.0
        assert not prom.running
    finally:
        httpd.shutdown()
        thread.join(5)
