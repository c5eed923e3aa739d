"""The whole path on real components: Apache Kafka -> `kpi worker` -> /metrics -> Prometheus, and the
rollup topic read back and compared with `kpi replay` on the same input (see scenario.py).
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from processor.core.live import live_view
from processor.decode import decode
from processor.services import KpiWorker, PrometheusServer
from processor.services.worker import series_key
from scenario import (create_topics, BAD_MESSAGES, BILLING_TODAY, latest, produce, read_all, settled, unique_topics,
                      without_version)

pytestmark = pytest.mark.integration

def test_worker_on_apache_kafka_matches_hand_figures_promql_and_replay(kafka, feed):
    env = unique_topics()
    valid = sum(1 for line in feed["lines"] if line not in BAD_MESSAGES)

    create_topics(kafka.bootstrap, env)
    asyncio.run(produce(kafka.bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], feed["events"], BAD_MESSAGES))
    worker = KpiWorker(kafka.bootstrap, work_dir=feed["work"] / "worker", config=feed["config"], env=env)
    with PrometheusServer([f"127.0.0.1:{worker.port}"], scrape_interval="1s") as prom:
        with worker:
            t0 = time.monotonic()
            expected_records = len(latest(feed["rollups"]))
            samples = worker.wait_for(
                lambda s: settled(s, valid, expected_records),
                timeout=180, what=f"{valid} events processed, {expected_records} rollups published, no lag")
            print(f"\nworker processed {valid} events and published the rollups in {time.monotonic() - t0:.1f}s")

            # -- the worker's own /metrics: hand-computed billing figures ----------------------------
            for series, value in BILLING_TODAY.items():
                name, labels = series.rstrip("}").split("{")
                key = series_key(name, dict(pair.replace('"', "").split("=") for pair in labels.split(",")))
                assert samples.get(key) == pytest.approx(value), series
            assert samples["kpi_events_duplicate_total"] == 1
            assert samples['kpi_events_dead_lettered_total{reason="not_json"}'] == 1
            assert samples['kpi_events_dead_lettered_total{reason="unknown_type"}'] == 1

            # -- Prometheus scraped it: PromQL returns the same figures ------------------------------
            # A scrape taken after the worker settled (the rollup counter reached its final value).
            published = samples["kpi_rollups_published_total"]
            prom.wait_for('kpi_rollups_published_total', lambda r: bool(r) and float(r[0]["value"][1]) == published,
                          timeout=30)
            for series, value in BILLING_TODAY.items():
                result = prom.query(series)
                assert len(result) == 1, series
                assert float(result[0]["value"][1]) == pytest.approx(value), series
            result = prom.query('sum by (queue) (contact_queue_offered{window="today",queue="billing"})'
                                ' - on(queue) sum by (queue) (contact_queue_answered{window="today"})')
            assert float(result[0]["value"][1]) == 3  # offered - answered = 2 abandoned + 1 flowed out

            # -- simulated queues: the gauges equal replay's live view at the same stream time ---------
            pipeline = feed["pipeline"]
            now = pipeline.queues.latest_ms
            for view in live_view(pipeline.queues, now):
                if view["queue_id"] == "billing":
                    continue
                sel = f'queue="{view["queue_id"]}",channel="{view["channel"]}"'
                today = view["windows"]["today"]
                for name in ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "handled"):
                    r = prom.query(f'contact_queue_{name}{{{sel},window="today"}}')
                    assert float(r[0]["value"][1]) == today[name], (sel, name)
                r = prom.query(f'contact_queue_waiting{{{sel}}}')
                assert float(r[0]["value"][1]) == view["waiting"], sel
                sl = today["service_level"]["answered_over_offered"]
                r = prom.query(f'contact_queue_service_level_ratio{{{sel},window="60m",formula="answered_over_offered"}}')
                assert float(r[0]["value"][1]) == pytest.approx(
                    view["windows"]["60m"]["service_level"]["answered_over_offered"]), sel
                assert sl is not None and 0 <= sl <= 1

        # -- the rollup topic read back equals replay on the same input -------------------------------
        streamed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
        dead = asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__DEAD_LETTER_TOPIC"]))

    got, want = latest(streamed), latest(feed["rollups"])
    assert sorted(got) == sorted(want)
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}
    republished = sum(1 for r in streamed if r["version"] > 1)
    print(f"rollups: {len(streamed)} streamed records ({republished} republished), {len(want)} intervals, "
          f"all equal to replay")
    billing = [r for r in got.values() if r["kind"] == "queue_interval" and r["queue_id"] == "billing"]
    assert [(r["interval_start"], r["offered"], r["answered"], r["aht_seconds"]) for r in billing] == [
        ("2026-03-02T10:00:00.000Z", 5, 2, 175.0)]
    assert sorted(json.loads(v)["reason"] for _k, v in dead) == ["not_json", "unknown_type"]
    assert sorted(d["reason"] for d in feed["dead_letters"]) == ["not_json", "unknown_type"]
    assert decode(feed["lines"][0]).event_id  # the produced bytes are what replay read
