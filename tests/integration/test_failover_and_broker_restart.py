"""Faults on real components: a worker of two killed (its partitions and tables move to the other),
and the Kafka broker restarted under a backlog (the worker reconnects by itself). In both, the
figures and rollups at the end equal `kpi replay` of the same input: nothing lost, nothing doubled.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from processor.services import ApacheKafka, KpiWorker
from scenario import (BAD_MESSAGES, assert_gauges_equal_replay, assert_rollups_equal_replay, caught_up,
                      first_half_produced, produce)

pytestmark = pytest.mark.integration

PARTITIONS = 4  # the default kafka.partitions


def _owned(s: dict[str, float], topic: str) -> int:
    return int(s.get(f'kpi_assigned_partitions{{topic="{topic}"}}', 0))


def test_two_workers_split_the_partitions_and_one_takes_over_when_the_other_is_killed(kafka, feed, tmp_path):
    env, half = first_half_produced(kafka.bootstrap, feed)
    topic, events = env["KPI_KAFKA__INPUT_TOPIC"], feed["events"]

    a = KpiWorker(kafka.bootstrap, work_dir=tmp_path / "a", config=feed["config"], env=env).start()
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "b", config=feed["config"], env=env) as b:
        try:
            def both_own_some(_s):
                sa, sb = a.scrape(), b.scrape()
                return _owned(sa, topic) and _owned(sb, topic) and \
                    _owned(sa, topic) + _owned(sb, topic) == PARTITIONS and \
                    sa.get("kpi_events_processed_total", 0) + sb.get("kpi_events_processed_total", 0) >= half // 2
            b.wait_for(both_own_some, timeout=120, what="the two workers sharing the input partitions")
            sa, sb = a.scrape(), b.scrape()
            print(f"\nsplit: worker a owns {_owned(sa, topic)} input partitions, b owns {_owned(sb, topic)}; "
                  f"processed {sa.get('kpi_events_processed_total', 0):.0f} + {sb.get('kpi_events_processed_total', 0):.0f}")
        finally:
            a.kill()  # SIGKILL
        asyncio.run(produce(kafka.bootstrap, topic, events[half:], BAD_MESSAGES))
        last_event_s = feed["pipeline"].contacts.stream_ms / 1000
        t0 = time.monotonic()
        s = b.wait_for(lambda s: caught_up(s, last_event_s, PARTITIONS) and _owned(s, topic) == PARTITIONS,
                       timeout=180, what="worker b owning every partition and caught up")
        print(f"worker b took over all {PARTITIONS} partitions and caught up {time.monotonic() - t0:.1f}s after the kill")
        assert_gauges_equal_replay(s, feed)
    records, keys = assert_rollups_equal_replay(kafka.bootstrap, env, feed)
    print(f"rollups: {records} records for {keys} keys, latest equal to replay")


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, so that restarting it disturbs no other test."""
    broker = ApacheKafka(tmp_path / "kafka")
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_restart_under_a_backlog_loses_nothing(own_broker, feed, tmp_path):
    env, half = first_half_produced(own_broker.bootstrap, feed)
    topic, events = env["KPI_KAFKA__INPUT_TOPIC"], feed["events"]

    with KpiWorker(own_broker.bootstrap, work_dir=tmp_path / "w", config=feed["config"], env=env) as w:
        s = w.wait_for(lambda s: s.get("kpi_events_processed_total", 0) >= half // 4, timeout=120,
                       what="a quarter of the backlog processed")
        print(f"\nbroker stopped after {s['kpi_events_processed_total']:.0f} of {half} events")
        own_broker.stop()
        time.sleep(5)
        assert w.running, "the worker exited while the broker was down:\n" + w.log_tail()
        own_broker.start(timeout=120)
        print("broker restarted")
        asyncio.run(produce(own_broker.bootstrap, topic, events[half:], BAD_MESSAGES))
        last_event_s = feed["pipeline"].contacts.stream_ms / 1000
        t0 = time.monotonic()
        s = w.wait_for(lambda s: caught_up(s, last_event_s), timeout=240, what="caught up after the broker restart")
        print(f"worker caught up {time.monotonic() - t0:.1f}s after the second half was produced")
        assert w.running
        assert_gauges_equal_replay(s, feed)
    records, keys = assert_rollups_equal_replay(own_broker.bootstrap, env, feed)
    print(f"rollups: {records} records for {keys} keys, latest equal to replay")
