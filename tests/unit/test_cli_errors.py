"""Every `kpi` command answers bad input with one or two lines and a non-zero exit, never a traceback.

Each case runs the real command line in a child process, as a user would.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processor.errors import CommandError, check_known_queues, retry_with_backoff

ROOT = Path(__file__).resolve().parents[2]
EVENT = '{"event_id":"e1","type":"contact.created","ts":"2026-11-23T08:00:00Z","contact_id":"c1","channel":"voice"}\n'


def kpi(*args: str, env: dict | None = None, timeout: float = 60) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stderr + proc.stdout, time.monotonic() - started


def assert_clear(rc: int, out: str, *words: str, code: int | None = None) -> None:
    assert rc != 0, out
    if code is not None:
        assert rc == code, (rc, out)
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, out
    for word in words:
        assert word in out, (word, out)


@pytest.fixture
def events_file(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text(EVENT)
    return p


@pytest.fixture
def closed_port():
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def typo_config(tmp_path):
    p = tmp_path / "queues.yaml"
    p.write_text("queues:\n  sales: {threshold_seconds: 20}\n  suport: {threshold_seconds: 30}\n")
    return p


# -- files ------------------------------------------------------------------------------------------------
def test_replay_missing_input(tmp_path):
    rc, out, _ = kpi("replay", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out.jsonl"))
    assert_clear(rc, out, "kpi replay: --input", "missing.jsonl", "no such file", code=2)
    assert not (tmp_path / "out.jsonl").exists()


def test_replay_input_is_a_folder(tmp_path):
    rc, out, _ = kpi("replay", "--input", str(tmp_path), "--output", str(tmp_path / "out.jsonl"))
    assert_clear(rc, out, "--input", "is a folder", code=2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: an unreadable file cannot be made")
def test_replay_unreadable_input(events_file, tmp_path):
    events_file.chmod(0)
    rc, out, _ = kpi("replay", "--input", str(events_file), "--output", str(tmp_path / "out.jsonl"))
    assert_clear(rc, out, "--input", "cannot be read", code=2)


def test_replay_output_in_a_missing_folder(events_file):
    rc, out, _ = kpi("replay", "--input", str(events_file), "--output", "/no/such/dir/x.jsonl")
    assert_clear(rc, out, "kpi replay: --output /no/such/dir/x.jsonl", "/no/such/dir does not exist", code=2)


def test_replay_output_is_a_folder(events_file, tmp_path):
    rc, out, _ = kpi("replay", "--input", str(events_file), "--output", str(tmp_path))
    assert_clear(rc, out, "--output", "is a folder", code=2)


def test_replay_dead_letters_unwritable(events_file, tmp_path):
    rc, out, _ = kpi("replay", "--input", str(events_file), "--output", str(tmp_path / "o.jsonl"),
                     "--dead-letters", "/no/such/dir/dl.jsonl")
    assert_clear(rc, out, "--dead-letters", "does not exist", code=2)


def test_replay_missing_config(events_file, tmp_path):
    rc, out, _ = kpi("replay", "--config", str(tmp_path / "nope.yaml"), "--input", str(events_file),
                     "--output", str(tmp_path / "o.jsonl"))
    assert_clear(rc, out, "nope.yaml", "does not exist", code=2)


def test_produce_missing_input(tmp_path):
    rc, out, _ = kpi("produce", "--input", str(tmp_path / "missing.jsonl"))
    assert_clear(rc, out, "kpi produce: --input", "no such file", code=2)


def test_produce_input_that_is_not_json_lines(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(EVENT + "{not json\n")
    rc, out, _ = kpi("produce", "--input", str(p))
    assert_clear(rc, out, "line 2", "not JSON", code=2)


def test_simulate_output_in_a_missing_folder():
    rc, out, _ = kpi("simulate", "--output", "/no/such/dir/events.jsonl")
    assert_clear(rc, out, "kpi simulate: --output", "does not exist", code=2)


def test_simulate_truth_unwritable(tmp_path):
    rc, out, _ = kpi("simulate", "--output", str(tmp_path / "e.jsonl"), "--truth", "/no/such/dir/t.jsonl")
    assert_clear(rc, out, "--truth", "does not exist", code=2)
    assert not (tmp_path / "e.jsonl").exists()


def test_simulate_missing_model(tmp_path):
    rc, out, _ = kpi("simulate", "--model", str(tmp_path / "nope.yaml"), "--output", str(tmp_path / "e.jsonl"))
    assert_clear(rc, out, "nope.yaml", code=2)


# -- unknown queue in --config ------------------------------------------------------------------------------
def test_simulate_unknown_queue_in_config(typo_config, tmp_path):
    rc, out, _ = kpi("simulate", "--config", str(typo_config), "--output", str(tmp_path / "e.jsonl"))
    assert_clear(rc, out, "'suport'", "sales, support", code=2)


def test_run_unknown_queue_in_config(typo_config):
    rc, out, _ = kpi("run", "--config", str(typo_config), "--port", "0", "--wallboard-port", "0")
    assert_clear(rc, out, "kpi run: --config", "'suport'", "sales, support", code=2)


def test_check_known_queues_accepts_the_model_queues():
    check_known_queues(["sales"], ["sales", "support"], "x")  # no error
    with pytest.raises(CommandError, match="'billing'"):
        check_known_queues(["sales", "billing"], ["sales", "support"], "x")


# -- unreachable broker ---------------------------------------------------------------------------------
def test_worker_unreachable_broker_retries_then_names_the_address(closed_port):
    address = f"127.0.0.1:{closed_port}"
    rc, out, took = kpi("worker", env={"KPI_KAFKA__BOOTSTRAP": address, "KPI_KAFKA__CONNECT_WAIT_SECONDS": "3",
                                       "KPI_WEB_PORT": "0"})
    # one line while it retries, then the two-line verdict
    assert rc == 1 and "Traceback" not in out, out
    assert out.splitlines()[0].startswith(f"waiting for the Kafka broker at {address}"), out
    verdict = out.splitlines()[1:]
    assert len(verdict) == 2 and verdict[0].startswith(f"kpi worker: cannot reach the Kafka broker at {address}"), out
    assert 3 <= took < 30, took


def test_produce_unreachable_broker(events_file, closed_port):
    rc, out, _ = kpi("produce", "--input", str(events_file), "--bootstrap", f"127.0.0.1:{closed_port}",
                     env={"KPI_KAFKA__CONNECT_WAIT_SECONDS": "1"})
    assert rc == 1 and "Traceback" not in out, out
    assert f"kpi produce: cannot reach the Kafka broker at 127.0.0.1:{closed_port}" in out


def test_simulate_unreachable_broker(closed_port):
    rc, out, _ = kpi("simulate", "--bootstrap", f"127.0.0.1:{closed_port}", env={"KPI_KAFKA__CONNECT_WAIT_SECONDS": "1"})
    assert rc == 1 and "Traceback" not in out, out
    assert f"kpi simulate: cannot reach the Kafka broker at 127.0.0.1:{closed_port}" in out


def test_run_unreachable_bootstrap(closed_port):
    rc, out, _ = kpi("run", "--bootstrap", f"127.0.0.1:{closed_port}", "--port", "0", "--wallboard-port", "0",
                     env={"KPI_KAFKA__CONNECT_WAIT_SECONDS": "1"})
    assert rc == 1 and "Traceback" not in out, out
    assert f"cannot reach the Kafka broker at 127.0.0.1:{closed_port}" in out
    assert "stopped" not in out or "every process it started has ended" not in out  # it failed, it did not stop


def test_broker_address_that_is_not_host_port():
    rc, out, _ = kpi("worker", env={"KPI_KAFKA__BOOTSTRAP": "localhost", "KPI_WEB_PORT": "0"})
    assert_clear(rc, out, "'localhost' is not host:port")


def test_backoff_schedule():
    sleeps: list[float] = []
    answers = iter(["refused", "refused", "refused", "refused", "refused", None])
    reason, tries, _ = retry_with_backoff(lambda: next(answers), 60, sleep=sleeps.append)
    assert reason is None and tries == 6
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 4.0]


# -- Redis, ports ---------------------------------------------------------------------------------------
def test_wallboard_unreachable_redis(closed_port):
    rc, out, took = kpi("wallboard", "--redis-url", f"redis://127.0.0.1:{closed_port}/0", "--redis-wait", "2",
                        "--port", "0")
    assert_clear(rc, out, f"kpi wallboard: cannot reach Redis at 127.0.0.1:{closed_port}/0", "redis-server", code=1)
    assert took < 30


def test_wallboard_port_in_use(busy_port, closed_port):
    rc, out, _ = kpi("wallboard", "--redis-url", f"redis://127.0.0.1:{closed_port}/0", "--port", str(busy_port))
    assert_clear(rc, out, f"port {busy_port}", "in use", "--port", code=1)


def test_worker_port_in_use(busy_port):
    rc, out, _ = kpi("worker", env={"KPI_WEB_PORT": str(busy_port)})
    assert_clear(rc, out, f"port {busy_port}", "/metrics", "in use", "KPI_WEB_PORT", code=1)


def test_run_metrics_port_in_use(busy_port):
    rc, out, _ = kpi("run", "--port", str(busy_port), "--wallboard-port", "0")
    assert_clear(rc, out, f"kpi run: port {busy_port}", "/metrics", "--port", code=1)


def test_run_wallboard_port_in_use(busy_port):
    rc, out, _ = kpi("run", "--port", "0", "--wallboard-port", str(busy_port))
    assert_clear(rc, out, f"port {busy_port}", "wallboard", "--wallboard-port", code=1)


def test_run_out_of_range_option():
    rc, out, _ = kpi("run", "--backlog", "-1", "--port", "0", "--wallboard-port", "0")
    assert_clear(rc, out, "--backlog", "out of range", code=2)
