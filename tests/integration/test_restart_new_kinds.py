"""A worker killed with SIGKILL in the middle of the windows of the new rollup kinds, replaced by a new
one with an empty local folder: experience_interval, agent_interval and resolution_day come back
from the changelog topics only, and nothing is lost or counted twice.

The feed crosses midnight (22:30 -> 01:00 UTC) with a recontact window W of 0.02 days (28.8 min),
so the day 2026-03-02 is published during the run (UTC queues: day end + W + lateness = 00:29:18;
`sales`, in Europe/Paris, at 23:29:18); the worker is killed after some experience and agent
intervals were published, before the UTC day is. `sales` has a business-hours calendar, so the
business-time percentiles go through too.
A hand-built customer has a contact at 23:50 (resolved at 23:55) and a repeat at 00:10 on the same
issue, within W, produced after the restart: its first contact is not first-contact resolved.
"""
from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import datetime

import pytest

from processor.config import load_settings
from processor.core.events import parse_ts_ms
from processor.decode import load_rollup_validators
from processor.replay import replay_lines
from processor.services import KpiWorker
from processor.simulator import Simulation, sorted_events
from scenario import create_topics, latest, produce, read_all, record_key, unique_topics, without_version

pytestmark = pytest.mark.integration

CONFIG = """\
recontact_window_days: 0.02
queues:
  sales:
    time_zone: Europe/Paris
    calendar:
      hours: {monday: ["08:00-20:00"], tuesday: ["08:00-20:00"]}
"""
NEW_KINDS = ("experience_interval", "agent_interval", "resolution_day")


def _hand_journey() -> list[dict]:
    def e(n, type_, ts, **f):
        return {"event_id": f"hj{n}", "type": type_, "ts": ts, **f}
    return [
        e(1, "contact.created", "2026-03-02T23:50:00Z", contact_id="hj-c1", channel="email", customer_id="hj-u1",
          issue="refund"),
        e(2, "contact.queued", "2026-03-02T23:50:00Z", contact_id="hj-c1", queue_id="hj-q"),
        e(3, "message.agent_replied", "2026-03-02T23:52:00Z", contact_id="hj-c1", agent_id="hj-a1"),
        e(4, "contact.resolved", "2026-03-02T23:55:00Z", contact_id="hj-c1"),
        e(5, "survey.responded", "2026-03-02T23:58:00Z", contact_id="hj-c1", survey="csat", score=2, scale_max=10),
        e(6, "contact.created", "2026-03-03T00:10:00Z", contact_id="hj-c2", channel="voice", customer_id="hj-u1",
          issue="refund"),
        e(7, "contact.queued", "2026-03-03T00:10:00Z", contact_id="hj-c2", queue_id="hj-q"),
    ]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    work = tmp_path_factory.mktemp("night")
    start = datetime.fromisoformat("2026-03-02T22:30:00+00:00").timestamp()
    events = sorted_events(Simulation(seed=5, start=start, duration_seconds=9000)) + _hand_journey()
    events.sort(key=lambda ev: parse_ts_ms(ev["ts"]))
    config = work / "queues.yaml"
    config.write_text(CONFIG)
    out = io.StringIO()
    lines = [json.dumps(ev).encode() for ev in events]
    replay_lines(lines, load_settings(config).engine(), out, None, flush=False)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    return {"events": events, "config": config, "rollups": replayed}


def _caught_up(s: dict[str, float], last_event_s: float) -> bool:
    lags = [v for k, v in s.items() if k.startswith("kpi_consumer_lag_messages")]
    return (s.get("kpi_stream_time_seconds") == last_event_s and len(lags) >= 3 and not any(lags)
            and s.get("kpi_watermark_seconds") == last_event_s)


def test_kill_9_in_the_middle_of_the_new_windows_loses_and_doubles_nothing(kafka, night, tmp_path):
    want = latest(night["rollups"])
    kinds = {r["kind"] for r in want.values()}
    assert set(NEW_KINDS) <= kinds, kinds
    hand = want[("resolution_day", "hj-q", "email", "2026-03-02T00:00:00.000Z")]
    assert (hand["contacts"], hand["first_contacts"], hand["first_contact_resolved"], hand["resolved"]) == (1, 1, 0, 1)

    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    events = night["events"]
    half = len(events) // 2
    create_topics(kafka.bootstrap, env)
    asyncio.run(produce(kafka.bootstrap, topic, events[:half]))

    first = KpiWorker(kafka.bootstrap, work_dir=tmp_path / "first", config=night["config"], env=env).start()
    try:
        deadline = time.monotonic() + 120
        while True:  # poll fast: kill while the worker is still working through the batch
            try:
                s = first.scrape()
            except OSError:
                s = {}
            if s.get("kpi_events_processed_total", 0) >= half * 0.5 and s.get("kpi_rollups_published_total", 0) >= 1:
                break
            assert time.monotonic() < deadline, first.log_tail()
            time.sleep(0.02)
    finally:
        first.kill()  # SIGKILL: no flush, no commit, no goodbye
    before = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
    print(f"\nkilled the first worker after {s['kpi_events_processed_total']:.0f} of {half} events; "
          f"{len(before)} rollups out: " + ", ".join(f"{k} {sum(r['kind'] == k for r in before)}" for k in NEW_KINDS))
    # the Paris day of `sales` (ends 23:00Z) may be published already; the UTC day of the others is still open
    assert not any(r["kind"] == "resolution_day" and r["time_zone"] == "UTC" for r in before)

    asyncio.run(produce(kafka.bootstrap, topic, events[half:]))
    last_event_s = max(parse_ts_ms(e["ts"]) for e in events) / 1000
    t0 = time.monotonic()
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "second", config=night["config"], env=env) as second:
        s = second.wait_for(lambda s: _caught_up(s, last_event_s), timeout=180, what="caught up after restart")
        print(f"second worker caught up in {time.monotonic() - t0:.1f}s "
              f"({s['kpi_events_processed_total']:.0f} events re-read or new; "
              f"{s.get('kpi_input_offset_gaps_total', 0):.0f} offsets skipped by the consumer and read again)")
        wanted = {k: without_version(r) for k, r in want.items()}
        deadline = time.monotonic() + 30
        while True:  # the last records may still be on their way to the topic
            streamed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"]))]
            if {k: without_version(r) for k, r in latest(streamed).items()} == wanted or time.monotonic() > deadline:
                break

    validators = load_rollup_validators()
    for r in streamed:
        validators[r["kind"]](r)
    got = latest(streamed)
    # nothing lost: every record replay publishes is there; nothing doubled: the latest of each equals replay
    assert sorted(got) == sorted(want)
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}
    # a record sent again after the restart (at-least-once) is the same record: one content per key and version
    by_version: dict[tuple, set] = {}
    for r in streamed:
        by_version.setdefault((record_key(r), r["version"]), set()).add(json.dumps(r, sort_keys=True))
    assert all(len(v) == 1 for v in by_version.values()), [k for k, v in by_version.items() if len(v) > 1]
    counts = {k: sum(1 for r in got.values() if r["kind"] == k) for k in NEW_KINDS}
    print(f"rollups after the crash: {len(streamed)} records, latest per key equal to replay: {counts}")
    day = got[("resolution_day", "hj-q", "email", "2026-03-02T00:00:00.000Z")]
    assert (day["first_contacts"], day["first_contact_resolved"], day["fcr"], day["window_days"]) == (1, 0, 0.0, 0.02)
