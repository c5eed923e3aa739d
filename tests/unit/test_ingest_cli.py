"""`kpi ingest` as a user runs it. The proofs of issue 23: a queue_log written from Asterisk's
documentation, and a CSV export with every quirk, through `kpi ingest` and `kpi replay`, give the
queue figures computed by hand; following a live file survives rotation and a restart without
duplicates; bad input is one line and a non-zero exit, never a traceback."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processor.ingest.asterisk import QueueLogMapper

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "ingest"
MAPPING = ROOT / "deploy" / "config" / "csv-mapping.example.yaml"


def _kpi(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def _replay(events: Path, tmp_path: Path) -> list[dict]:
    out, dead = tmp_path / "rollups.jsonl", tmp_path / "dead.jsonl"
    done = _kpi("replay", "--input", str(events), "--output", str(out), "--dead-letters", str(dead))
    assert done.returncode == 0, done.stderr
    assert dead.read_text() == ""  # every event the adapter made was accepted and fitted its contact
    return [json.loads(line) for line in out.read_text().splitlines()]


def _queue_figures(records: list[dict]) -> dict:
    keep = ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "answered_within_threshold",
            "abandoned_within_threshold", "service_level", "asa_seconds", "abandon_rate", "max_wait_seconds",
            "handled", "aht_seconds", "talk_seconds", "hold_seconds", "acw_seconds")
    latest = {}
    for r in records:
        if r["kind"] == "queue_interval":
            key = (r["queue_id"], r["interval_start"][11:16])
            if key not in latest or r["version"] > latest[key]["version"]:
                latest[key] = r
    return {k: {f: r[f] for f in keep} for k, r in latest.items()}


def test_asterisk_queue_log_gives_the_hand_computed_figures(tmp_path):
    events = tmp_path / "events.jsonl"
    done = _kpi("ingest", "asterisk", "--queue-log", str(DATA / "queue_log"), "--output", str(events),
                "--exit-key", "1=voicemail")
    assert done.returncode == 0, done.stderr
    assert "28 lines read, 7 contacts and 40 events produced, 3 lines skipped" in done.stderr
    assert f"events sent to {events}" in done.stderr
    records = _replay(events, tmp_path)
    # By hand, from tests/data/ingest/queue_log (see docs/ingest.md#worked-example): 09:00-09:15.
    # sales: C101 answered after 12 s, C103 abandoned after 3 s (short), C104 abandoned after 45 s,
    # C105 timed out after 120 s, C106 answered after 30 s. Legs: C101 188 s (09:00:12-09:03:20),
    # C106 in sales 120 s (09:04:30 until its blind transfer at 09:06:30).
    sales = {"offered": 5, "answered": 2, "abandoned": 2, "short_abandoned": 1, "flowed_out": 1,
             "answered_within_threshold": 1, "abandoned_within_threshold": 1,
             "service_level": {"answered_over_offered": 1 / 4, "answered_over_answered": 1 / 2,
                               "abandons_positive": 2 / 4},
             "asa_seconds": (12 + 30) / 2, "abandon_rate": (2 - 1) / (5 - 1), "max_wait_seconds": 120.0,
             "handled": 2, "aht_seconds": (188 + 120) / 2, "talk_seconds": 308.0, "hold_seconds": 0.0,
             "acw_seconds": 0.0}
    # support: C106 again (queued 09:06:30, answered 09:06:40: 10 s, talk 120 s), C108 pressed 1 after
    # 8 s (voicemail), C110 left an empty queue after 2 s.
    support = {"offered": 3, "answered": 1, "abandoned": 0, "short_abandoned": 0, "flowed_out": 2,
               "answered_within_threshold": 1, "abandoned_within_threshold": 0,
               "service_level": {"answered_over_offered": 1 / 3, "answered_over_answered": 1.0,
                                 "abandons_positive": 1.0},
               "asa_seconds": 10.0, "abandon_rate": 0.0, "max_wait_seconds": 10.0,
               "handled": 1, "aht_seconds": 120.0, "talk_seconds": 120.0, "hold_seconds": 0.0, "acw_seconds": 0.0}
    assert _queue_figures(records) == {("sales", "09:00"): sales, ("support", "09:00"): support}
    # Agent PJSIP/1001 from its member lines and calls: available 12+10+30+450 s, busy 188+120 s,
    # paused 30 s, removed from its only queue at 09:14.
    agent = next(r for r in records if r["kind"] == "agent_interval" and r["agent_id"] == "PJSIP/1001"
                 and r["interval_start"].endswith("09:00:00.000Z"))
    assert agent["seconds_by_state"] == {"available": 502.0, "busy": 308.0, "acw": 0.0, "away": 30.0, "offline": 60.0}
    flowed = [json.loads(x) for x in events.read_text().splitlines() if '"contact.flowed_out"' in x]
    assert sorted(e["reason"] for e in flowed) == ["overflow", "timeout", "voicemail"]


def test_asterisk_from_standard_input_is_the_same(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert _kpi("ingest", "asterisk", "--queue-log", str(DATA / "queue_log"), "--output", str(a)).returncode == 0
    done = _kpi("ingest", "asterisk", "--queue-log", "-", "--output", str(b), stdin=(DATA / "queue_log").read_text())
    assert done.returncode == 0, done.stderr
    assert a.read_bytes() == b.read_bytes()


def test_csv_export_with_every_quirk_gives_the_expected_figures(tmp_path):
    events = tmp_path / "events.jsonl"
    done = _kpi("ingest", "csv", "--mapping", str(MAPPING), str(DATA / "calls.csv"), "--output", str(events))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "11 rows read, 8 contacts and 28 events produced, 3 rows skipped" in err
    for said in ("skipped 1: missing outcome", "skipped 1: answered without an agent",
                 "skipped 1: unknown outcome value", "adjusted 1: queue_exit after midnight",
                 "adjusted 1: service_start up to 2 s before queue_exit (clock skew)",
                 "adjusted 1: zero-second abandon kept", "adjusted 1: never queued"):
        assert said in err, said
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [e["ts"] for e in lines] == sorted(e["ts"] for e in lines)  # sent in event-time order
    figures = _queue_figures(_replay(events, tmp_path))
    # Europe/Paris, 22 November 2026 (UTC+1): local 23:40 is 22:40Z.
    # 22:30Z: R1 answered after 15 s; its leg ends at 22:45:35Z, in the next interval.
    assert figures[("billing", "22:30")] == {
        "offered": 1, "answered": 1, "abandoned": 0, "short_abandoned": 0, "flowed_out": 0,
        "answered_within_threshold": 1, "abandoned_within_threshold": 0,
        "service_level": {"answered_over_offered": 1.0, "answered_over_answered": 1.0, "abandons_positive": 1.0},
        "asa_seconds": 15.0, "abandon_rate": 0.0, "max_wait_seconds": 15.0, "handled": 0, "aht_seconds": None,
        "talk_seconds": 0.0, "hold_seconds": 0.0, "acw_seconds": 0.0}
    # 22:45Z: R3 answered after 20 s (service start 2 s before the exit: skew, answered at the exit),
    # R4 abandoned after 45 s (0:00:00 service times = none), R5 abandoned after 0 s (short),
    # R9 to voicemail after 60 s; legs R1 and R3, 300 s each.
    assert figures[("billing", "22:45")] == {
        "offered": 4, "answered": 1, "abandoned": 2, "short_abandoned": 1, "flowed_out": 1,
        "answered_within_threshold": 1, "abandoned_within_threshold": 1,
        "service_level": {"answered_over_offered": 1 / 3, "answered_over_answered": 1.0, "abandons_positive": 2 / 3},
        "asa_seconds": 20.0, "abandon_rate": 1 / 3, "max_wait_seconds": 60.0, "handled": 2, "aht_seconds": 300.0,
        "talk_seconds": 600.0, "hold_seconds": 0.0, "acw_seconds": 0.0}
    # 23:00Z: R2 queued at 23:58:10 local and answered at 00:00:40 (the next day): 150 s; R10 (arrived
    # after midnight) abandoned after 4 s (short); R2's leg 300 s.
    assert figures[("billing", "23:00")] == {
        "offered": 2, "answered": 1, "abandoned": 1, "short_abandoned": 1, "flowed_out": 0,
        "answered_within_threshold": 0, "abandoned_within_threshold": 1,
        "service_level": {"answered_over_offered": 0.0, "answered_over_answered": 0.0, "abandons_positive": 0.5},
        "asa_seconds": 150.0, "abandon_rate": 0.0, "max_wait_seconds": 150.0, "handled": 1, "aht_seconds": 300.0,
        "talk_seconds": 300.0, "hold_seconds": 0.0, "acw_seconds": 0.0}
    assert set(figures) == {("billing", "22:30"), ("billing", "22:45"), ("billing", "23:00")}


@pytest.mark.parametrize("args,message", [
    (["asterisk", "--queue-log", "/nonexistent/queue_log", "--output", "x.jsonl"],
     "kpi ingest asterisk: cannot read /nonexistent/queue_log: No such file or directory"),
    (["asterisk", "--queue-log", "-", "--follow", "--output", "x.jsonl"], "--follow reads a file"),
    (["asterisk", "--queue-log", str(DATA / "queue_log"), "--exit-key", "1=hangup", "--output", "x.jsonl"],
     "--exit-key '1=hangup'"),
    (["asterisk", "--queue-log", str(DATA / "queue_log"), "--checkpoint", "c.json", "--output", "x.jsonl"],
     "--checkpoint goes with --follow"),
    (["csv", "--mapping", "/nonexistent.yaml", str(DATA / "calls.csv"), "--output", "x.jsonl"],
     "kpi ingest csv: cannot read mapping /nonexistent.yaml: No such file or directory"),
    (["csv", "--mapping", str(MAPPING), "/nonexistent.csv", "--output", "x.jsonl"],
     "kpi ingest csv: cannot read /nonexistent.csv: No such file or directory"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "processor.cli", "ingest", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bad_mapping_yaml_and_unknown_column_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: [unclosed\n")
    done = _kpi("ingest", "csv", "--mapping", str(bad), str(DATA / "calls.csv"), "--output", str(tmp_path / "x"))
    assert done.returncode == 2 and "is not valid YAML (line 2)" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    other = tmp_path / "other.yaml"
    other.write_text(MAPPING.read_text().replace("queue_exit: Queue Exit", "queue_exit: Exit Time"))
    done = _kpi("ingest", "csv", "--mapping", str(other), str(DATA / "calls.csv"), "--output", str(tmp_path / "x"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "column 'Exit Time' (for queue_exit) is not in the file's header" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _wait_for(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            if len(lines) >= n:
                return lines
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {n} events")


def _events_of(lines: list[str]) -> int:
    mapper = QueueLogMapper()
    return sum(len(mapper.map_line(x)) for x in lines)


def _follow(log: Path, out: Path, ckpt: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "processor.cli", "ingest", "asterisk", "--queue-log", str(log),
                             "--follow", "--poll", "0.1", "--output", str(out), "--checkpoint", str(ckpt)],
                            stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def test_follow_survives_rotation_and_restarts_without_losing_or_repeating(tmp_path):
    lines = (DATA / "queue_log").read_text().splitlines(keepends=True)
    expected = _kpi("ingest", "asterisk", "--queue-log", str(DATA / "queue_log"), "--output", str(tmp_path / "all.jsonl"))
    assert expected.returncode == 0
    want = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    log, out, ckpt = tmp_path / "queue_log", tmp_path / "events.jsonl", tmp_path / "ckpt.json"
    log.write_text("".join(lines[:10]))
    proc = _follow(log, out, ckpt)
    with open(log, "a") as fh:  # a line written in two pieces is read once it is whole
        fh.write(lines[10][:15])
        fh.flush()
        time.sleep(0.5)
        fh.write(lines[10][15:])
    _wait_for(out, _events_of(lines[:11]), proc)
    # Rotation as Asterisk and logrotate do it: rename, then a new file under the old name.
    os.rename(log, tmp_path / "queue_log.1")
    with open(tmp_path / "queue_log.1", "a") as fh:  # a last line reaches the old file after the rename
        fh.write(lines[11])
    log.write_text("".join(lines[12:18]))
    assert len(_wait_for(out, _events_of(lines[:18]), proc)) == _events_of(lines[:18])
    err = _stop(proc)
    assert "was rotated" in err
    # Stopped; more lines come, and the file is rotated once more while nobody reads it.
    with open(log, "a") as fh:
        fh.write("".join(lines[18:22]))
    os.rename(log, tmp_path / "queue_log.0")
    log.write_text("".join(lines[22:]))
    proc = _follow(log, out, ckpt)
    got = _wait_for(out, len(want), proc)
    err = _stop(proc)
    assert "(rotated while stopped)" in err
    assert got == want  # every event once, in order, with the ids a one-shot run gives
    # A restart after a crash between sending and checkpointing re-sends, with the same ids.
    state = json.loads(ckpt.read_text())
    state["offset"] = 0
    ckpt.write_text(json.dumps(state))
    proc = _follow(log, out, ckpt)
    again = _wait_for(out, len(want) + 1, proc)
    _stop(proc)
    assert {e["event_id"] for e in again} == {e["event_id"] for e in want}
    # The checkpoint belongs to its file: another file with it is refused, in one line.
    other = tmp_path / "other_log"
    other.write_text(lines[0])
    done = _kpi("ingest", "asterisk", "--queue-log", str(other), "--follow", "--output", str(out),
                "--checkpoint", str(ckpt))
    assert done.returncode == 2 and f"checkpoint {ckpt} is of {log}, not {other}" in done.stderr


def test_a_file_that_is_not_utf8_and_a_broker_that_is_not_there_are_said_plainly(tmp_path, monkeypatch):
    bad = tmp_path / "latin1.csv"
    bad.write_bytes((DATA / "calls.csv").read_bytes().replace(b"Caller", b"Appelant \xe9"))
    done = _kpi("ingest", "csv", "--mapping", str(MAPPING), str(bad), "--output", str(tmp_path / "x"))
    assert done.returncode == 2 and "is not UTF-8 text" in done.stderr and "Traceback" not in done.stderr
    # Nothing listens on port 1: said as `kpi produce` says it (processor/errors.py), exit 1.
    monkeypatch.setenv("KPI_KAFKA__CONNECT_WAIT_SECONDS", "0")
    done = _kpi("ingest", "asterisk", "--queue-log", str(DATA / "queue_log"), "--bootstrap", "127.0.0.1:1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "kpi ingest asterisk: cannot reach the Kafka broker at 127.0.0.1:1" in done.stderr
