"""The whole path on real components: Apache Kafka -> `kpi worker` -> /metrics -> Prometheus, and the
rollup topic read back and compared with `kpi replay` on the same input (see scenario.py).
"""
from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

from processor.core.capacity import staffing_view
from processor.core.foresight import foresight_view
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
            # at risk, breached and live Erlang staffing at the stream clock: the same as replay's
            for view in foresight_view(pipeline.queues, now):
                sel = f'queue="{view["queue_id"]}",channel="{view["channel"]}"'
                for name in ("at_risk", "breached_waiting"):
                    r = prom.query(f'contact_queue_{name}{{{sel}}}')
                    assert float(r[0]["value"][1]) == view[name], (sel, name)
            for view in staffing_view(pipeline.queues, now):
                for model, fig in view["models"].items():
                    r = prom.query(f'contact_queue_required_agents{{queue="{view["queue_id"]}",model="{model}"}}')
                    assert [float(x["value"][1]) for x in r] == ([] if fig["required_agents"] is None
                                                                else [fig["required_agents"]]), (view["queue_id"], model)

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


LOST_CONFIG = """\
queues:
  lost:
    stale_after_seconds: {voice: 600}
"""


def _lost_feed() -> list[dict]:
    """Queue `lost` (voice given up after 10 min without an event): a call answered normally, a call whose
    end never comes, an email still waiting, short calls that move time on to 10:40, and a churn sent
    twice with one event id."""
    n = iter(range(1, 1000))

    def e(type_, hms, **f):
        return {"event_id": f"l{next(n)}", "type": type_, "ts": f"2026-03-02T{hms}Z", **f}

    def arrive(cid, hms, channel="voice"):
        return [e("contact.created", hms, contact_id=cid, channel=channel, customer_id=f"u-{cid}"),
                e("contact.queued", hms, contact_id=cid, queue_id="lost")]
    out = arrive("lc1", "10:00:00") + [
        e("contact.answered", "10:00:10", contact_id="lc1", queue_id="lost", agent_id="l-a1"),
        e("contact.wrapup_started", "10:02:00", contact_id="lc1", agent_id="l-a1"),
        e("contact.wrapup_ended", "10:02:30", contact_id="lc1", agent_id="l-a1")]
    out += arrive("lc2", "10:01:00")                      # its end is lost: stale at 10:11
    out += arrive("lc3", "10:01:00", channel="email")     # an email: 30 days
    churn = e("customer.churned", "10:05:00", customer_id="u-lc1")
    out += [churn, dict(churn, ts="2026-03-02T10:06:00Z")]  # the same id again, another time
    for k, hms in enumerate(["10:04:00", "10:12:00", "10:21:00", "10:30:00", "10:40:00"]):
        out += arrive(f"lt{k}", hms) + [e("contact.abandoned", hms[:-2] + "20", contact_id=f"lt{k}", queue_id="lost")]
    out.sort(key=lambda ev: ev["ts"])
    return out


def test_a_contact_whose_end_is_lost_is_given_up_by_the_worker_as_by_replay(kafka, tmp_path):
    from processor.config import load_settings
    from processor.replay import replay_lines
    from scenario import produce as produce_events

    events = _lost_feed()
    config = tmp_path / "queues.yaml"
    config.write_text(LOST_CONFIG)
    out, dead = io.StringIO(), io.StringIO()
    pipeline = replay_lines([json.dumps(ev).encode() for ev in events], load_settings(config).engine(), out, dead,
                            flush=False)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    views = {(v["queue_id"], v["channel"]): v for v in live_view(pipeline.queues, pipeline.queues.latest_ms)}
    # what replay says: the lost call given up and counted, the email still waiting, the churn repeat a duplicate
    assert (views[("lost", "voice")]["waiting"], views[("lost", "email")]["waiting"]) == (0, 1)
    assert pipeline.queues.stale == {("lost", "voice"): 1}
    assert pipeline.counts.duplicates == 1 and dead.getvalue() == ""

    env = unique_topics()
    create_topics(kafka.bootstrap, env)
    asyncio.run(produce_events(kafka.bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], events))
    voice, email = {"queue": "lost", "channel": "voice"}, {"queue": "lost", "channel": "email"}
    stale_key = series_key("contact_queue_stale_contacts_total", voice)
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "worker", config=config, env=env) as worker:
        s = worker.wait_for(lambda s: settled(s, len(events), len(latest(replayed))) and s.get(stale_key) == 1,
                            timeout=180, what="every event processed, the lost call given up")
        assert s[series_key("contact_queue_waiting", voice)] == 0
        assert s[series_key("contact_queue_longest_wait_seconds", voice)] == 0
        assert s[series_key("contact_queue_waiting", email)] == 1
        assert s[series_key("contact_queue_longest_wait_seconds", email)] == views[("lost", "email")]["longest_wait_seconds"]
        assert series_key("contact_queue_stale_contacts_total", email) not in s
        assert s["kpi_events_duplicate_total"] == 1
        streamed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
    got, want = latest(streamed), latest(replayed)
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}


HOT_CONFIG = """\
recontact_window_days: 0.05
"""


def test_hot_customer_keys_stream_as_they_replay(kafka, tmp_path):
    """Issue 19's real-data shape through the worker: over half the contacts under the placeholder id
    `0`, Zipf-distributed identified customers, one busy account; every record read back from the
    rollup topic equals replay's, unidentified_contacts included."""
    from processor.config import load_settings
    from processor.replay import replay_lines
    from scenario import produce as produce_events
    from tests.hotkeys import realistic_events

    day = 86_400_000
    events = realistic_events(3_000, 2 * day, seed=5, busy_contacts=400, busy_span_ms=3 * 3_600_000)
    created = [e for e in events if e["type"] == "contact.created"]
    assert sum(e["customer_id"] == "0" for e in created) >= 0.5 * len(created)
    config = tmp_path / "queues.yaml"
    config.write_text(HOT_CONFIG)
    out, dead = io.StringIO(), io.StringIO()
    replay_lines([json.dumps(ev).encode() for ev in events], load_settings(config).engine(), out, dead, flush=False)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    days = [r for r in replayed if r["kind"] == "resolution_day"]
    assert days and all(r["unidentified_contacts"] > 0 for r in days) and dead.getvalue() == ""

    env = unique_topics()
    create_topics(kafka.bootstrap, env)
    asyncio.run(produce_events(kafka.bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], events))
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "worker", config=config, env=env) as worker:
        worker.wait_for(lambda s: settled(s, len(events), len(latest(replayed))), timeout=300,
                        what="every event processed, the rollups published, no lag")
        streamed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
    got, want = latest(streamed), latest(replayed)
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}
    print(f"\n{len(events)} events, {len(streamed)} records streamed, {len(want)} keys equal to replay "
          f"({len(days)} resolution_day)")
