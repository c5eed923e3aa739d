"""`kpi replay` as a user runs it: a file in, rollups out, progress and destinations on stderr."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from processor.decode import load_rollup_validators


def _kpi(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "events.jsonl"
    done = _kpi("simulate", "--output", str(path), "--hours", "2", "--seed", "3",
                "--start", "2026-11-23T08:00:00Z", "--duplicates", "0.05")
    assert done.returncode == 0, done.stderr
    assert f"to {path}" in done.stderr
    with open(path, "a") as fh:  # two lines a real feed could carry: garbage, and an unknown type
        fh.write("{broken\n")
        fh.write(json.dumps({"event_id": "z1", "type": "contact.levitated", "ts": "2026-11-23T09:00:00Z"}) + "\n")
    return path


def test_replay_writes_valid_rollups_and_says_where(events_file, tmp_path):
    out, dead = tmp_path / "rollups.jsonl", tmp_path / "dead.jsonl"
    done = _kpi("replay", "--input", str(events_file), "--output", str(out), "--dead-letters", str(dead))
    assert done.returncode == 0, done.stderr
    assert f"rollups written to {out}" in done.stderr
    assert f"dead letters written to {dead}" in done.stderr
    assert "events/s" in done.stderr and "duplicates ignored" in done.stderr

    every = [json.loads(line) for line in out.read_text().splitlines()]
    validators = load_rollup_validators()
    for rec in every:
        validators[rec["kind"]](rec)
    records = [r for r in every if r["kind"] == "queue_interval"]
    # Two hours from 08:00, flushed at the end: every 15-minute interval of every queue that had traffic.
    starts = {r["interval_start"] for r in records}
    assert min(starts) == "2026-11-23T08:00:00.000Z"
    assert {(r["queue_id"], r["channel"]) for r in records} == {("sales", "voice"), ("support", "voice"),
                                                               ("support", "chat")}
    assert all(r["version"] == 1 for r in records)  # the file is in event-time order: nothing to correct
    reasons = sorted(json.loads(line)["reason"] for line in dead.read_text().splitlines())
    assert reasons == ["not_json", "unknown_type"]


def test_replay_is_deterministic_and_duplicates_change_nothing(events_file, tmp_path):
    first, second, deduped = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert _kpi("replay", "--input", str(events_file), "--output", str(first)).returncode == 0
    assert _kpi("replay", "--input", str(events_file), "--output", str(second)).returncode == 0
    assert first.read_bytes() == second.read_bytes()

    # The same feed without its re-sent events gives byte-identical rollups.
    seen, unique = set(), tmp_path / "unique.jsonl"
    with open(events_file) as src, open(unique, "w") as dst:
        for line in src:
            try:
                event_id = json.loads(line).get("event_id")
            except json.JSONDecodeError:
                continue
            if event_id not in seen:
                seen.add(event_id)
                dst.write(line)
    assert _kpi("replay", "--input", str(unique), "--output", str(deduped)).returncode == 0
    assert deduped.read_bytes() == first.read_bytes()


def test_no_flush_publishes_only_what_the_watermark_closed(events_file, tmp_path):
    flushed, live = tmp_path / "flushed.jsonl", tmp_path / "live.jsonl"
    assert _kpi("replay", "--input", str(events_file), "--output", str(flushed)).returncode == 0
    assert _kpi("replay", "--input", str(events_file), "--output", str(live), "--no-flush").returncode == 0
    all_records = flushed.read_text().splitlines()
    closed = live.read_text().splitlines()
    assert 0 < len(closed) < len(all_records)
    assert set(closed) <= set(all_records)


def test_bad_configuration_is_a_clear_error(events_file, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("defaults:\n  threshold_seconds: -3\n")
    done = _kpi("replay", "--input", str(events_file), "--output", str(tmp_path / "x.jsonl"), "--config", str(config))
    assert done.returncode == 2
    assert "defaults.threshold_seconds" in done.stderr
    assert "Traceback" not in done.stderr
