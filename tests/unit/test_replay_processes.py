"""`kpi replay` runs stage one in a second process when it can (processor/replay.py): the records and
dead letters must be byte-identical to running every stage in one process, with and without flush,
and with the wall-clock bound (the same `not_after_ms`, taken once by the parent)."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from processor.core.events import parse_ts_ms
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


def both_modes(path, tmp_path, **options):
    """Replay `path` in one process and in two; assert the outputs, dead letters and counts are identical.
    Returns the one-process run: (pipeline, rollup lines, dead-letter lines)."""
    engine = EngineSettings(interval_minutes=5)
    one_out, one_dead = io.StringIO(), io.StringIO()
    with open(path, "rb") as src:
        one = replay_lines(src, engine, one_out, one_dead, **options)
    two_out, two_dead = io.StringIO(), tmp_path / "dead.jsonl"
    two = replay_file(path, engine, two_out, two_dead, **options)
    assert one_out.getvalue() == two_out.getvalue()
    assert one_dead.getvalue() == two_dead.read_text()
    assert (one.counts.events, one.counts.duplicates, one.counts.dead_letters, one.counts.records,
            one.counts.from_the_future) == (two.counts.events, two.counts.duplicates, two.counts.dead_letters,
                                            two.counts.records, two.counts.from_the_future)
    return one, one_out.getvalue(), one_dead.getvalue()


@pytest.mark.parametrize("flush", [True, False])
def test_two_processes_write_what_one_process_writes(events_file, tmp_path, flush):
    _, out, dead = both_modes(events_file, tmp_path, flush=flush)
    versions = [json.loads(line)["version"] for line in out.splitlines()]
    assert max(versions) > 1  # the feed really has corrections
    reasons = {json.loads(line)["reason"] for line in dead.splitlines()}
    assert {"not_json", "unknown_type", "impossible_order"} <= reasons


def test_a_missing_input_fails_as_in_one_process(tmp_path):
    with pytest.raises(FileNotFoundError):
        replay_file(tmp_path / "nope.jsonl", EngineSettings(), io.StringIO())


def test_the_wall_clock_bound_is_applied_identically_in_both_modes(events_file, tmp_path):
    """Far-future lines (two days ahead of the bound, and just past it) among the feed: with the same bound
    both modes dead-letter exactly them as from_the_future, and the rest replays as if they were not there."""
    engine = EngineSettings(interval_minutes=5)
    lines = events_file.read_text().splitlines()
    bound = parse_ts_ms("2026-11-23T12:00:00Z")
    future = [json.dumps({"event_id": "f1", "type": "contact.queued", "ts": "2026-11-25T09:00:00Z",
                          "contact_id": "future", "queue_id": "sales"}),
              json.dumps({"event_id": "f2", "type": "contact.resolved", "ts": "2026-11-23T12:00:00.001Z",
                          "contact_id": "future2"})]
    with_future = tmp_path / "with_future.jsonl"
    with_future.write_text("\n".join(lines[:500] + future[:1] + lines[500:1500] + future[1:] + lines[1500:]) + "\n")
    one, out, dead = both_modes(with_future, tmp_path, not_after_ms=bound)
    assert one.counts.from_the_future == 2
    future_dead = [json.loads(line) for line in dead.splitlines() if json.loads(line)["reason"] == "from_the_future"]
    assert [json.loads(d["raw"])["event_id"] for d in future_dead] == ["f1", "f2"]
    # and without them, or with no bound at all on the file without them, the same rollups
    clean_out = io.StringIO()
    with open(events_file, "rb") as src:
        replay_lines(src, engine, clean_out, io.StringIO(), not_after_ms=None)
    assert out == clean_out.getvalue()
    # with no bound the far-future line moves stream time: what the bound prevents
    unbounded = io.StringIO()
    replay_file(with_future, engine, unbounded, tmp_path / "dead-unbounded.jsonl", not_after_ms=None)
    assert unbounded.getvalue() != clean_out.getvalue()


def test_replay_leaves_nothing_in_the_young_generation(events_file):
    """After a replay the cycle collector is on again with the books' objects in the oldest generation:
    left in the youngest, the first collection after it would walk all of them (0.2 s per 100,000
    events) and the next replay in the same process would pay for it again."""
    import gc

    gc.collect()
    assert gc.isenabled()
    young = lambda: len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))  # noqa: E731
    before = young()
    with open(events_file, "rb") as src:
        pipeline = replay_lines(src, EngineSettings(), io.StringIO(), not_after_ms=None)
    assert gc.isenabled()
    assert pipeline.counts.events > 1000
    assert young() <= before + 1000  # the books alone are far more objects than that
    assert len(gc.get_objects(generation=2)) > pipeline.counts.events  # ...and they are still tracked, not frozen
