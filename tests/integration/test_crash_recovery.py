"""A worker killed with SIGKILL in the middle of the stream, replaced by a new one with an empty local
folder: its state comes back from the changelog topics only, and nothing is lost or counted twice."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from processor.core.live import live_view
from processor.services import KpiWorker
from processor.services.worker import series_key
from scenario import create_topics, BAD_MESSAGES, BILLING_TODAY, latest, produce, read_all, unique_topics, without_version

pytestmark = pytest.mark.integration


def _caught_up(s: dict[str, float], last_event_s: float) -> bool:
    lags = [v for k, v in s.items() if k.startswith("kpi_consumer_lag_messages")]
    return (s.get("kpi_stream_time_seconds") == last_event_s and len(lags) >= 2 and not any(lags)
            and s.get("kpi_watermark_seconds") == last_event_s)


def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(kafka, feed, tmp_path):
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    events = feed["events"]
    half = len(events) // 2
    create_topics(kafka.bootstrap, env)
    asyncio.run(produce(kafka.bootstrap, topic, events[:half]))

    first = KpiWorker(kafka.bootstrap, work_dir=tmp_path / "first", config=feed["config"], env=env).start()
    try:
        s = first.wait_for(lambda s: s.get("kpi_events_processed_total", 0) >= half // 2, timeout=120,
                           what="half of the first batch processed")
    finally:
        first.kill()  # SIGKILL: no flush, no commit, no goodbye
    print(f"\nkilled the first worker after {s['kpi_events_processed_total']:.0f} of {half} events")

    asyncio.run(produce(kafka.bootstrap, topic, events[half:], BAD_MESSAGES))
    pipeline = feed["pipeline"]
    last_event_s = pipeline.contacts.stream_ms / 1000
    t0 = time.monotonic()
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "second", config=feed["config"], env=env) as second:
        s = second.wait_for(lambda s: _caught_up(s, last_event_s), timeout=180, what="caught up after restart")
        print(f"second worker caught up in {time.monotonic() - t0:.1f}s "
              f"({s['kpi_events_processed_total']:.0f} events re-read or new)")
        for series, value in BILLING_TODAY.items():
            name, labels = series.rstrip("}").split("{")
            key = series_key(name, dict(pair.replace('"', "").split("=") for pair in labels.split(",")))
            assert s.get(key) == pytest.approx(value), series
        for view in live_view(pipeline.queues, pipeline.queues.latest_ms):
            labels = {"queue": view["queue_id"], "channel": view["channel"]}
            for name in ("offered", "answered", "abandoned", "handled"):
                got = s[series_key(f"contact_queue_{name}", labels | {"window": "today"})]
                assert got == view["windows"]["today"][name], (labels, name)
            assert s[series_key("contact_queue_waiting", labels)] == view["waiting"], labels

    streamed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
    got, want = latest(streamed), latest(feed["rollups"])
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}
    print(f"rollups after the crash: {len(streamed)} records for {len(got)} intervals, latest equal to replay")
