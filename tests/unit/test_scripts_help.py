"""Every script in scripts/ starts and explains itself: a refactor that moves what a benchmark imports
breaks it silently otherwise (scripts/bench_slices.py imported `processor.app` for a day after the
worker's split, issue 21)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py"))


def test_there_are_scripts_to_check():
    assert "bench.py" in SCRIPTS and "bench_slices.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_answers_help(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:500]
