"""`kpi replay` as a user runs it: a file in, rollups out, progress and destinations on stderr."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

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


# ------------------------------------------------------------------------------ the wall-clock bound

def _future_file(tmp_path, days_ahead: float = 2):
    """A simulated hour that starts `days_ahead` days after now (as `kpi simulate --start` in the future gives)."""
    start = datetime.fromtimestamp(time.time() + days_ahead * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "future.jsonl"
    done = _kpi("simulate", "--output", str(path), "--hours", "0.5", "--seed", "4", "--start", start)
    assert done.returncode == 0, done.stderr
    return path, start


def test_by_default_events_ahead_of_the_wall_clock_are_from_the_future(events_file, tmp_path):
    """As a worker: one line a year ahead does not move stream time; the file's other lines replay as without it."""
    ahead = datetime.fromtimestamp(time.time() + 365 * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = events_file.read_text().splitlines()
    with_future = tmp_path / "with_future.jsonl"
    with_future.write_text("\n".join(lines[:100] + [json.dumps({"event_id": "f1", "type": "contact.created",
                                                                 "ts": ahead, "contact_id": "f", "channel": "voice",
                                                                 "customer_id": "cf"})] + lines[100:]) + "\n")
    out, dead, clean = tmp_path / "out.jsonl", tmp_path / "dead.jsonl", tmp_path / "clean.jsonl"
    done = _kpi("replay", "--input", str(with_future), "--output", str(out), "--dead-letters", str(dead))
    assert done.returncode == 0, done.stderr
    assert "dead-lettered as from_the_future" in done.stderr and "1 of them from_the_future" in done.stderr
    assert _kpi("replay", "--input", str(events_file), "--output", str(clean)).returncode == 0
    assert out.read_bytes() == clean.read_bytes()
    future = [json.loads(line) for line in dead.read_text().splitlines() if json.loads(line)["reason"] == "from_the_future"]
    assert [json.loads(d["raw"])["event_id"] for d in future] == ["f1"]


def test_not_after_none_replays_a_file_whose_times_lie_in_the_future(tmp_path):
    path, start = _future_file(tmp_path)
    bounded, free, dead = tmp_path / "bounded.jsonl", tmp_path / "free.jsonl", tmp_path / "dead.jsonl"
    done = _kpi("replay", "--input", str(path), "--output", str(bounded), "--dead-letters", str(dead))
    assert done.returncode == 0 and "--not-after none" in done.stderr  # the hint
    assert bounded.read_text() == "" and {json.loads(x)["reason"] for x in dead.read_text().splitlines()} == {
        "from_the_future"}
    done = _kpi("replay", "--input", str(path), "--output", str(free), "--not-after", "none")
    assert done.returncode == 0 and "from_the_future" not in done.stderr
    records = [json.loads(line) for line in free.read_text().splitlines()]
    assert min(r["interval_start"] for r in records if r["kind"] == "queue_interval")[:13] == start[:13]
    # an explicit bound past the file's last event accepts everything too, and says which bound it used
    later = _kpi("replay", "--input", str(path), "--output", str(tmp_path / "later.jsonl"), "--not-after", "2100-01-01")
    assert later.returncode == 0 and "later than 2100-01-01T00:00:00.000Z" in later.stderr
    assert (tmp_path / "later.jsonl").read_bytes() == free.read_bytes()


def test_a_bad_not_after_is_a_clear_error(events_file, tmp_path):
    done = _kpi("replay", "--input", str(events_file), "--output", str(tmp_path / "x.jsonl"), "--not-after", "soon")
    assert done.returncode == 2
    assert "--not-after 'soon' is not an ISO 8601 time" in done.stderr and "Traceback" not in done.stderr


def test_not_after_bound():
    from processor.replay import not_after_bound

    assert not_after_bound(None, 300, now=1_795_000_000) == 1_795_000_300_000  # the worker's rule
    assert not_after_bound("none", 300) is None and not_after_bound(" NONE ", 300) is None
    want = 1_795_996_800_000  # 2026-11-30T00:00:00Z
    for text in ("2026-11-30T00:00:00Z", "2026-11-30T01:00:00+01:00", "2026-11-30T00:00:00", "2026-11-30"):
        assert not_after_bound(text, 300) == want, text
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        not_after_bound("next week", 300)
