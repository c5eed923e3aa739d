"""A worker on Apache Kafka exports how long its event loop was held (processor/loophold.py)."""
from __future__ import annotations

import asyncio

import pytest

from processor.services import KpiWorker
from scenario import create_topics, produce, unique_topics

pytestmark = pytest.mark.integration


def test_metrics_expose_the_hold_histogram_its_maximum_and_the_timed_steps(kafka, feed):
    env = unique_topics()
    create_topics(kafka.bootstrap, env)
    asyncio.run(produce(kafka.bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], feed["events"]))
    with KpiWorker(kafka.bootstrap, work_dir=feed["work"] / "holds-worker", config=feed["config"], env=env) as worker:
        s = worker.wait_for(lambda s: s.get("kpi_events_processed_total", 0) > 0
                            and s.get("kpi_event_loop_hold_seconds_count", 0) > 0
                            and 'kpi_event_loop_step_max_seconds{step="housekeeping (two)"}' in s
                            and 'kpi_event_loop_step_max_seconds{step="stage one: events"}' in s,
                            timeout=300, what="events processed, holds observed, a housekeeping pass timed")
    buckets = sorted(((float(k.split('le="')[1].split('"')[0]), v) for k, v in s.items()
                      if k.startswith("kpi_event_loop_hold_seconds_bucket{")))
    assert buckets[-1][0] == float("inf") and buckets[-1][1] == s["kpi_event_loop_hold_seconds_count"]
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))  # cumulative
    assert s["kpi_event_loop_hold_seconds_sum"] >= 0
    assert s["kpi_event_loop_hold_max_seconds"] >= 0 and s["kpi_event_loop_hold_cpu_max_seconds"] >= 0
    assert s["kpi_event_loop_hold_cpu_seconds_count"] == s["kpi_event_loop_hold_seconds_count"]
    assert 'kpi_event_loop_step_max_seconds{step="tick"}' in s
