"""The core compiled by mypyc (processor/native.py) does exactly what its source does.

scripts/setup.sh builds it, so the whole suite runs against the compiled core; these tests pin
that it is the one in use, that the source still gives the same bytes, and that an edited source
is never shadowed by a build of the old one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import processor.core as core

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd or REPO)


def test_the_suite_runs_the_compiled_core():
    if os.environ.get(core.PURE_ENV):
        pytest.fail(f"{core.PURE_ENV} is set: the compiled core is not what this suite tests")
    assert core.COMPILED, (f"no compiled core for this source in {core.native_dir()}: "
                           "run `python -m processor.native` (scripts/setup.sh does)")
    import processor.core.contacts as contacts
    import processor.core.settings as settings

    assert contacts.__file__.endswith(".so") and str(core.native_dir()) in contacts.__file__
    assert settings.__file__ == str(core.HERE / "settings.py")  # configuration stays Python (see NOT_COMPILED)


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    """Two simulated hours with duplicates and disorder, plus a line the decoder rejects and one the core does."""
    path = tmp_path_factory.mktemp("native") / "events.jsonl"
    done = _run("-m", "processor.cli", "simulate", "--output", str(path), "--hours", "2", "--seed", "11",
                "--start", "2026-11-23T08:00:00Z", "--duplicates", "0.05", "--disorder", "5")
    assert done.returncode == 0, done.stderr
    with open(path, "a") as fh:
        fh.write("{broken\n")
        fh.write('{"event_id":"x1","type":"contact.queued","ts":"2026-11-23T08:00:00Z","contact_id":"late",'
                 '"queue_id":"sales"}\n')  # two hours behind stream time: too late for the core
    return path


@pytest.mark.parametrize("processes", ["1", "2"])
def test_compiled_and_source_replay_give_the_same_bytes(feed, tmp_path, processes):
    outputs = {}
    for pure in ("1", "0"):
        out, dead = tmp_path / f"out-{pure}.jsonl", tmp_path / f"dead-{pure}.jsonl"
        done = _run("-m", "processor.cli", "replay", "--input", str(feed), "--output", str(out),
                    "--dead-letters", str(dead), "--not-after", "none",
                    env={core.PURE_ENV: pure, "KPI_REPLAY_PROCESSES": processes})
        assert done.returncode == 0, done.stderr
        outputs[pure] = (out.read_bytes(), dead.read_bytes())
    records, dead_letters = outputs["1"]
    assert records.count(b"\n") > 100 and dead_letters.count(b"\n") >= 2  # not vacuous
    assert outputs["0"] == outputs["1"]


def test_an_edited_module_runs_from_its_source_not_from_an_old_build(tmp_path):
    """A copy of the package with the same source uses the build; one edited byte and it does not."""
    copy = tmp_path / "processor"
    shutil.copytree(REPO / "processor", copy, ignore=shutil.ignore_patterns("__pycache__"))
    probe = "import processor.core as c, processor.core.queues as q; print(c.COMPILED, q.__file__)"
    env = {"PYTHONPATH": str(tmp_path)}
    same = _run("-c", probe, env=env, cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert same.stdout.split()[0] == str(core.COMPILED)
    with open(copy / "core" / "queues.py", "a") as fh:
        fh.write("\n# edited\n")
    edited = _run("-c", probe, env=env, cwd=tmp_path)
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.split() == ["False", str(copy / "core" / "queues.py")]
