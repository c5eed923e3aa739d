"""A flood: a burst at ten times the steady rate, absorbed without loss; the figures catch up and
equal `kpi replay` of the same input, and the worker's memory stays bounded."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from processor.services import KpiWorker
from scenario import BAD_MESSAGES, assert_gauges_equal_replay, assert_rollups_equal_replay, caught_up, create_topics, unique_topics

pytestmark = pytest.mark.integration

STEADY_PER_S = 100
BURST_FACTOR = 10


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _paced(bootstrap: str, topic: str, events: list[dict], per_s: float, raw: list[bytes] = ()) -> float:
    """Send at `per_s` events per second (in steps of 1/20 s); returns the achieved rate."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    t0 = time.monotonic()
    try:
        step = max(1, int(per_s / 20))
        for i in range(0, len(events), step):
            for ev in events[i:i + step]:
                key = ev.get("contact_id") or ev.get("agent_id") or ""
                await producer.send(topic, json.dumps(ev).encode(), key=key.encode())
            ahead = (i + step) / per_s - (time.monotonic() - t0)
            if ahead > 0:
                await asyncio.sleep(ahead)
        for message in raw:
            await producer.send(topic, message, key=b"raw")
        await producer.flush()
    finally:
        await producer.stop()
    return len(events) / (time.monotonic() - t0)


def test_a_burst_of_ten_times_the_steady_rate_is_absorbed(kafka, feed, tmp_path):
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    events = feed["events"]
    steady, burst = events[:STEADY_PER_S * 6], events[STEADY_PER_S * 6:]
    create_topics(kafka.bootstrap, env)
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "w", config=feed["config"], env=env) as w:
        w.wait_for(lambda s: "kpi_assigned_partitions{topic=\"%s\"}" % topic in s, timeout=120, what="partitions assigned")
        rate = asyncio.run(_paced(kafka.bootstrap, topic, steady, STEADY_PER_S))
        rss_steady = _rss_mib(w.pid)
        t0 = time.monotonic()
        burst_rate = asyncio.run(_paced(kafka.bootstrap, topic, burst, STEADY_PER_S * BURST_FACTOR, BAD_MESSAGES))
        last_event_s = feed["pipeline"].contacts.stream_ms / 1000
        peak = rss_steady
        deadline = time.monotonic() + 180
        while True:
            s = w.scrape()
            peak = max(peak, _rss_mib(w.pid))
            if caught_up(s, last_event_s):
                break
            assert time.monotonic() < deadline, "the worker did not catch up with the burst within 180 s"
            time.sleep(0.2)
        print(f"\nsteady {rate:.0f} events/s for {len(steady)} events, then a burst of {len(burst)} at {burst_rate:.0f} "
              f"events/s; caught up {time.monotonic() - t0:.1f}s after the burst began; RSS {rss_steady:.0f} MiB "
              f"steady, {peak:.0f} MiB peak")
        assert burst_rate >= 0.8 * BURST_FACTOR * STEADY_PER_S
        assert_gauges_equal_replay(s, feed)
        assert peak <= rss_steady * 1.5, "memory grew by more than half during the burst"
    records, keys = assert_rollups_equal_replay(kafka.bootstrap, env, feed)
    print(f"rollups: {records} records for {keys} keys, latest equal to replay")
