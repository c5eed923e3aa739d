"""scripts/benchlib/memory.py and its probe (scripts/benchlib/memprobe): the figures bench.py prints
beside the worker's peak RSS (issue 19's growth, docs/performance.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
# A line of a bench worker's log (13b62bd, 5 December 2026), as Faust writes it.
OVERLAP = ("[2026-12-05 16:20:52,989] [27155] [WARNING] Timer processor.app.create_app.<locals>.housekeeping "
           "is overlapping (interval=5.0 runtime=32.60060872900067) \n")


def run_python(code: str, env: dict) -> None:
    subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, check=True, timeout=60)


def test_the_probe_samples_a_process_started_with_it(bench, tmp_path):
    out = tmp_path / "worker-memory.jsonl"
    # 2.5 s alive: samples at 0, 1 and 2 s; the list keeps a few million blocks alive meanwhile
    run_python("import time; kept = [object() for _ in range(2_000_000)]; time.sleep(2.5)",
               bench.memory.probe_env(out))
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) >= 2
    assert all(s["vmrss_kb"] > 0 and s["vmhwm_kb"] >= s["vmrss_kb"] for s in samples)
    assert samples[-1]["py_blocks"] > 2_000_000
    summary = bench.probe_summary(out)
    assert summary["samples"] == len(samples)
    assert summary["at_peak_rss"]["vmrss_kb"] == max(s["vmrss_kb"] for s in samples)
    assert summary["most_py_blocks"]["py_blocks"] == max(s["py_blocks"] for s in samples)


def test_without_the_variable_the_probe_does_nothing(bench, tmp_path):
    env = {**bench.memory.probe_env(tmp_path / "never.jsonl"), "BENCH_MEMPROBE_OUT": ""}
    run_python("import threading, sys; sys.exit(threading.active_count() != 1)", env)  # no probe thread
    assert not (tmp_path / "never.jsonl").exists()


def test_housekeeping_overruns_read_from_the_worker_log(bench, tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("[...] [INFO] Ready\n" + OVERLAP + OVERLAP.replace("32.60060872900067", "7.27"))
    found = bench.housekeeping_overruns(log)
    assert found == {"overruns": 2, "longest_seconds": 32.60060872900067, "interval_seconds": 5.0}
    assert "over their 5 s interval: 2, longest 32.6 s" in bench.memory_text({}, found)
    log.write_text("[...] [INFO] Ready\n")
    assert bench.housekeeping_overruns(log)["overruns"] == 0


def test_overruns_of_the_per_stage_housekeeping_timers_are_counted_too(bench, tmp_path):
    """Since 5 December each stage has its own timer (processor.worker.housekeeping.one / two / journeys):
    a pattern written for the one timer's name read 0 overruns in a log that had 3."""
    log = tmp_path / "worker.log"
    log.write_text("".join(OVERLAP.replace("processor.app.create_app.<locals>.housekeeping",
                                           f"processor.worker.housekeeping.{stage}").replace("32.60060872900067", secs)
                           for stage, secs in (("one", "25.11"), ("one", "7.29"), ("two", "5.02"))))
    assert bench.housekeeping_overruns(log) == {"overruns": 3, "longest_seconds": 25.11, "interval_seconds": 5.0}
