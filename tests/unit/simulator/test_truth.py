"""The processor against the simulator's ground truth, interval by interval, exactly.

The simulator keeps its own record of every queue segment and agent leg it creates and computes
the `queue_interval` figures from those (`Simulation.truth`, no `processor.core` involved). The
events, with duplicates and delivered out of order by less than the allowed lateness, go through
`replay_lines` (decode + both stages); every record the processor publishes must equal the truth.
"""
from __future__ import annotations

import collections
import io
import json

import pytest

from processor import cli
from processor.core.events import parse_ts_ms
from processor.core.settings import EngineSettings, QueueSettings
from processor.replay import replay_lines
from processor.simulator import Simulation, delivered_events, dumps, load_model_text

START = parse_ts_ms("2026-11-23T08:00:00Z") / 1000

# Busy on purpose: short patience (abandons, short abandons), flow-outs (overflow into another
# queue, voicemail, callback), transfers both ways, holds, ACW, breaks, staffing changes inside
# the run, a rush hour, chat and email tickets (customer replies queue them again, reopens).
MODEL = """
defaults:
  time_zone: Europe/Paris
  daily_curve: {0: 0.6, 9: 1.0, 10: 1.7, 11: 0.8}
  staffing_curve: {0: 0.6, 9: 1.0, 11: 0.7}
  hold: {probability: 0.3, duration: {distribution: exponential, mean: 30}}
  acw: {distribution: lognormal, mean: 25, sd: 20}
  breaks: {every: {distribution: exponential, mean: 1800}, duration: {distribution: uniform, min: 60, max: 300}}
  repeat: {after_abandon: 0.5, retry_delay: {distribution: exponential, mean: 300},
           if_unresolved: 0.3, if_resolved: 0.05, delay: {distribution: exponential, mean: 3600}}
  survey: {probability: 0.3}
queues:
  - queue: sales
    arrivals_per_hour: 150
    agents: 8
    handle_time: {distribution: lognormal, mean: 200, sd: 120}
    patience_seconds: 60
    flow_out: {after_seconds: 90, reason: overflow, to_queue: overflow}
    transfer: {probability: 0.1, to: [support]}
  - queue: overflow
    arrivals_per_hour: 10
    agents: 2
    handle_time: {distribution: exponential, mean: 150}
    patience_seconds: 200
    flow_out: {after_seconds: 100, reason: voicemail}
    transfer: null
  - queue: support
    time_zone: America/New_York
    arrivals_per_hour: 120
    agents: 7
    handle_time: {distribution: lognormal, mean: 240, sd: 150}
    patience_seconds: 150
    flow_out: {after_seconds: 200, reason: callback}
    transfer: {probability: 0.1, to: sales}
  - queue: support
    channel: chat
    arrivals_per_hour: 60
    agents: 5
    handle_time: {distribution: uniform, min: 60, max: 600}
    patience_seconds: 200
    hold: null
  - queue: support
    channel: email
    arrivals_per_hour: 30
    agents: 3
    handle_time: {distribution: lognormal, mean: 300, sd: 200}
    patience_seconds: null
    hold: null
    transfer: null
    customer_reply: {probability: 0.5, delay: {distribution: exponential, mean: 1200}}
    reopen: {probability: 0.3, delay: {distribution: exponential, mean: 1800}}
"""


def engine(interval_minutes: int) -> EngineSettings:
    return EngineSettings(
        interval_minutes=interval_minutes, lateness_ms=30_000, retention_ms=7_200_000,
        default_queue=QueueSettings(20.0, 5.0, 0.8, "UTC"),
        queues=(("sales", QueueSettings(15.5, 4.0, 0.8, "Europe/Paris")),
                ("support", QueueSettings(30.0, 8.0, 0.9, "America/New_York"))))


def latest(records: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in records:
        if r["kind"] != "queue_interval":
            continue
        key = (r["queue_id"], r["channel"], r["interval_start"])
        if key not in out or r["version"] > out[key]["version"]:
            out[key] = r
    return out


# The version, and the Erlang staffing fields of queue_interval (model figures, not counts of the
# simulated center: checked by tests/unit/simulator/test_staffing.py and tests/unit/core/test_foresight.py).
NOT_IN_TRUTH = ("version", "required_agents", "staffed_agents")


@pytest.mark.parametrize("interval_minutes, seed, hours", [(15, 1, 3.0), (5, 2, 2.0)])
def test_processor_equals_ground_truth_interval_by_interval(interval_minutes, seed, hours):
    settings = engine(interval_minutes)
    sim = Simulation(load_model_text(MODEL), seed=seed, start=START, duration_seconds=hours * 3600,
                     duplicate_probability=0.05, disorder_seconds=25)  # lateness is 30 s
    feed = delivered_events(sim)
    truth = sim.truth(settings)

    # The feed is as hostile as promised: duplicates, out of order (but within the lateness).
    times = [parse_ts_ms(ev["ts"]) for ev in feed]
    newest, late, worst = 0, 0, 0
    for t in times:
        if t < newest:
            late += 1
            worst = max(worst, newest - t)
        newest = max(newest, t)
    duplicates = len(feed) - len({ev["event_id"] for ev in feed})
    contact_duplicates = sum(1 for ev in feed if "contact_id" in ev) - len({ev["event_id"] for ev in feed
                                                                         if "contact_id" in ev})
    assert late > len(feed) // 10 and 5_000 < worst < 30_000
    assert contact_duplicates > 100

    out, dead = io.StringIO(), io.StringIO()
    pipeline = replay_lines([dumps(ev).encode() for ev in feed], settings, out, dead)
    records = [r for r in map(json.loads, out.getvalue().splitlines()) if r["kind"] == "queue_interval"]
    assert dead.getvalue() == "" and pipeline.counts.dead_letters == 0
    # Every duplicate of a contact event is counted; a duplicate agent.state_changed is counted only
    # while it is still the agent's latest state (one arriving after a newer state is "superseded").
    assert contact_duplicates <= pipeline.counts.duplicates <= duplicates
    # Out of order by less than the lateness: every interval is complete when first published.
    assert all(r["version"] == 1 for r in records)

    got = latest(records)
    want = {(t["queue_id"], t["channel"], t["interval_start"]): t for t in truth}
    assert sorted(got) == sorted(want)
    for key, record in got.items():
        assert {k: v for k, v in record.items() if k not in NOT_IN_TRUTH} == want[key], key

    # ... and the truth covers every kind of segment and leg the contract counts.
    total = collections.Counter()
    for t in truth:
        for k in ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "handled",
                  "answered_within_threshold", "abandoned_within_threshold"):
            total[k] += t[k]
        total["hold_ms"] += t["hold_seconds"] > 0
        total["acw_ms"] += t["acw_seconds"] > 0
    assert all(total[k] > 0 for k in total), total
    assert total["answered_within_threshold"] < total["answered"]
    types = collections.Counter(ev["type"] for ev in feed)
    for t in ("contact.transferred", "contact.hold_started", "contact.flowed_out", "contact.reopened",
              "message.customer_replied", "agent.state_changed"):
        assert types[t] > 0, t
    reasons = {ev["reason"] for ev in feed if ev["type"] == "contact.flowed_out"}
    assert {"overflow", "voicemail", "callback"} <= reasons
    channels = {(t["queue_id"], t["channel"]) for t in truth}
    assert channels == {("sales", "voice"), ("overflow", "voice"), ("support", "voice"),
                        ("support", "chat"), ("support", "email")}
    segments_per_contact = collections.Counter()
    for ev in feed:
        if ev["type"] == "contact.queued":
            segments_per_contact[ev["contact_id"], ev["event_id"]] = 1
    per_contact = collections.Counter(cid for cid, _ in segments_per_contact)
    assert max(per_contact.values()) >= 3  # transfers, overflow and re-queued tickets


def test_cli_truth_file_equals_kpi_replay(tmp_path, capsys):
    """`kpi simulate --truth` with the settings file, then `kpi replay` with the same file: equal."""
    config = tmp_path / "queues.yaml"
    config.write_text("interval_minutes: 15\nqueues:\n"
                      "  sales: {threshold_seconds: 20, short_abandon_seconds: 5, time_zone: Europe/Paris}\n"
                      "  support: {threshold_seconds: 30, short_abandon_seconds: 8, time_zone: America/New_York}\n")
    events, truth, rollups = tmp_path / "events.jsonl", tmp_path / "truth.jsonl", tmp_path / "rollups.jsonl"
    assert cli.main(["simulate", "--output", str(events), "--truth", str(truth), "--config", str(config),
                     "--hours", "2", "--seed", "5", "--start", "2026-11-23T13:00:00Z",
                     "--duplicates", "0.03", "--disorder", "20"]) == 0
    err = capsys.readouterr().err
    assert f"ground-truth queue_interval records to {truth}" in err and f"events to {events}" in err
    assert cli.main(["replay", "--input", str(events), "--output", str(rollups), "--config", str(config)]) == 0
    got = {k: {f: v for f, v in r.items() if f not in NOT_IN_TRUTH}
           for k, r in latest([json.loads(line) for line in rollups.read_text().splitlines()]).items()}
    want = {(t["queue_id"], t["channel"], t["interval_start"]): t
            for t in map(json.loads, truth.read_text().splitlines())}
    assert len(want) >= 24 and got == want  # 3 queue/channel pairs x 8 intervals at least
