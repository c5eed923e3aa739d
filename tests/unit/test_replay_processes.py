"""`kpi replay` runs stage one in a second process when it can (processor/replay.py): the records and
dead letters must be byte-identical to running every stage in one process, with and without flush."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from processor.core.settings import EngineSettings
from processor.replay import replay_file, replay_lines


@pytest.fixture(scope="module")
def events_file(tmp_path_factory):
    """A feed with what makes replay hard: disorder, re-sent events, late corrections, bad lines."""
    path = tmp_path_factory.mktemp("processes") / "events.jsonl"
    done = subprocess.run([sys.executable, "-m", "processor.cli", "simulate", "--output", str(path), "--hours", "3",
                           "--seed", "5", "--start", "2026-11-23T07:00:00Z", "--duplicates", "0.03", "--disorder", "20"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = path.read_text().splitlines()
    # Move every 40th event 10 minutes later (past the lateness: corrections), add bad lines and blanks.
    moved = [line for i, line in enumerate(lines) if i % 40 == 7]
    kept = [line for i, line in enumerate(lines) if i % 40 != 7]
    out = []
    for i, line in enumerate(kept):
        out.append(line)
        if i % 300 == 150 and moved:
            out.extend(moved[:3])
            del moved[:3]
        if i % 997 == 3:
            out += ["{broken", "", json.dumps({"event_id": f"x{i}", "type": "contact.levitated", "ts": "2026-11-23T09:00:00Z"}),
                    json.dumps({"event_id": f"o{i}", "type": "contact.answered", "ts": json.loads(line)["ts"],
                                "contact_id": f"ghost{i}", "queue_id": "sales", "agent_id": "a1"})]
    out += moved
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.mark.parametrize("flush", [True, False])
def test_two_processes_write_what_one_process_writes(events_file, tmp_path, flush):
    engine = EngineSettings(interval_minutes=5)
    one_out, one_dead = io.StringIO(), io.StringIO()
    with open(events_file, "rb") as src:
        one = replay_lines(src, engine, one_out, one_dead, flush=flush)
    two_out, two_dead = io.StringIO(), tmp_path / "dead.jsonl"
    two = replay_file(events_file, engine, two_out, two_dead, flush=flush)
    assert one_out.getvalue() == two_out.getvalue()
    assert one_dead.getvalue() == two_dead.read_text()
    assert (one.counts.events, one.counts.duplicates, one.counts.dead_letters, one.counts.records) == \
        (two.counts.events, two.counts.duplicates, two.counts.dead_letters, two.counts.records)
    versions = [json.loads(line)["version"] for line in one_out.getvalue().splitlines()]
    assert max(versions) > 1  # the feed really has corrections
    reasons = {json.loads(line)["reason"] for line in one_dead.getvalue().splitlines()}
    assert {"not_json", "unknown_type", "impossible_order"} <= reasons


def test_a_missing_input_fails_as_in_one_process(tmp_path):
    with pytest.raises(FileNotFoundError):
        replay_file(tmp_path / "nope.jsonl", EngineSettings(), io.StringIO())
