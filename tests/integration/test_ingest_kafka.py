"""`kpi ingest` into a real broker: the events reach the input topic keyed as the contract says,
the same as the JSON lines of --output; a follower stopped and restarted sends every event once."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scenario import read_all, unique_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUEUE_LOG = ROOT / "tests" / "data" / "ingest" / "queue_log"


def _env(extra: dict[str, str]) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)


def _messages(bootstrap: str, topic: str) -> list[tuple[str, dict]]:
    return [(k.decode(), json.loads(v)) for k, v in asyncio.run(read_all(bootstrap, topic))]


def test_ingest_asterisk_produces_the_events_keyed_as_the_contract_says(kafka, tmp_path):
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    done = subprocess.run([sys.executable, "-m", "processor.cli", "ingest", "asterisk", "--queue-log", str(QUEUE_LOG),
                           "--bootstrap", kafka.bootstrap], env=_env(env), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"events sent to topic {topic} on {kafka.bootstrap}" in done.stderr
    expected = tmp_path / "events.jsonl"
    assert subprocess.run([sys.executable, "-m", "processor.cli", "ingest", "asterisk", "--queue-log", str(QUEUE_LOG),
                           "--output", str(expected)], env=_env({}), capture_output=True, timeout=60).returncode == 0
    want = [json.loads(x) for x in expected.read_text().splitlines()]
    got = _messages(kafka.bootstrap, topic)
    assert sorted((e["event_id"] for _, e in got)) == sorted(e["event_id"] for e in want)
    by_id = {e["event_id"]: e for e in want}
    for key, event in got:
        assert event == by_id[event["event_id"]]
        assert key == (event.get("contact_id") or event["agent_id"])


@pytest.mark.parametrize("source", ["calls.csv", "generated"])
def test_ingest_csv_produces_the_events_of_its_output_file(source, kafka, tmp_path):
    # The CSV adapter renders JSON lines; to the broker each goes as its event. "generated": a file
    # over 512 KiB, whose rows worker processes map (--workers 2), released a minute at a time.
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    path = ROOT / "tests" / "data" / "ingest" / "calls.csv"
    extra: list[str] = []
    if source == "generated":
        import importlib.util

        spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "scripts" / "bench_ingest.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        path, extra = tmp_path / "calls.csv", ["--workers", "2"]
        bench.write_csv(path, 8_000)
        assert path.stat().st_size > 600_000
    args = [sys.executable, "-m", "processor.cli", "ingest", "csv", *extra, "--mapping",
            str(ROOT / "deploy" / "config" / "csv-mapping.example.yaml"), str(path)]
    done = subprocess.run([*args, "--bootstrap", kafka.bootstrap], env=_env(env), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"events sent to topic {topic} on {kafka.bootstrap}" in done.stderr
    expected = tmp_path / "events.jsonl"
    assert subprocess.run([*args, "--output", str(expected)], env=_env({}), capture_output=True,
                          timeout=60).returncode == 0
    want = [json.loads(x) for x in expected.read_text().splitlines()]
    got = _messages(kafka.bootstrap, topic)
    assert want and sorted(e["event_id"] for _, e in got) == sorted(e["event_id"] for e in want)
    assert all(key == event["contact_id"] for key, event in got)
    # Keyed by contact, so each contact's events are in one partition, in the file's order.
    for contact in {e["contact_id"] for e in want}:
        assert [e for _, e in got if e["contact_id"] == contact] == [e for e in want if e["contact_id"] == contact]


def test_a_follower_stopped_and_restarted_sends_every_event_once(kafka, tmp_path):
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    lines = QUEUE_LOG.read_text().splitlines(keepends=True)
    log, ckpt = tmp_path / "queue_log", tmp_path / "ckpt.json"
    log.write_text("".join(lines[:14]))

    def run_until_caught_up() -> str:
        proc = subprocess.Popen([sys.executable, "-m", "processor.cli", "ingest", "asterisk", "--queue-log", str(log),
                                 "--follow", "--poll", "0.2", "--checkpoint", str(ckpt), "--bootstrap", kafka.bootstrap],
                                env=_env(env), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if ckpt.exists() and json.loads(ckpt.read_text())["offset"] == log.stat().st_size:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        else:
            proc.kill()
            raise AssertionError("the follower did not reach the end of the file")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return err

    run_until_caught_up()
    with open(log, "a") as fh:
        fh.write("".join(lines[14:]))
    err = run_until_caught_up()
    assert "(resuming)" in err
    got = _messages(kafka.bootstrap, topic)
    expected = tmp_path / "events.jsonl"
    assert subprocess.run([sys.executable, "-m", "processor.cli", "ingest", "asterisk", "--queue-log", str(QUEUE_LOG),
                           "--output", str(expected)], env=_env({}), capture_output=True, timeout=60).returncode == 0
    want = [json.loads(x) for x in expected.read_text().splitlines()]
    # Delivered once: nothing lost, nothing sent twice (the order is per partition, hence sorted).
    assert sorted(e["event_id"] for _, e in got) == sorted(e["event_id"] for e in want)
