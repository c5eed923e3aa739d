"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer), bounded and seeded.

Runs tests/fuzz/decoder_target.py in a subprocess (libFuzzer owns the process it runs in) with a
fixed -seed and -runs, the schema examples as seed corpus (copied: libFuzzer adds to its corpus
folder) and a dictionary of JSON and contract tokens. What the target checks on every input is
in its docstring: decode returns an Event or raises BadEvent with a known reason, the dead letter
carries the input whole, and an accepted event goes through the core without an exception.

A longer hunt: KPI_FUZZ_RUNS=2000000 python -m pytest tests/fuzz/test_decoder_fuzz.py
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(__file__).with_name("decoder_target.py")
DICTIONARY = Path(__file__).with_name("decode.dict")
EXAMPLES = sorted((ROOT / "schemas" / "examples" / "events").glob("*.json"))
RUNS = int(os.environ.get("KPI_FUZZ_RUNS", "50000"))


def fuzz(tmp_path: Path, runs: int, seed: int = 1, **env: str) -> tuple[subprocess.CompletedProcess, Path, Path]:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    corpus.mkdir()
    artifacts.mkdir()
    for p in EXAMPLES:
        shutil.copy(p, corpus / p.name)
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, str(TARGET), str(corpus), f"-seed={seed}", f"-runs={runs}", f"-dict={DICTIONARY}",
         "-max_len=70000", "-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}/",
         "-print_final_stats=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        # a fixed hash seed: set and dict orders, hence coverage feedback, are the same on every run
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0", "KPI_FUZZ_SUMMARY": str(summary), **env})
    return proc, summary, artifacts


def test_decoder_fuzz_finds_no_escape(tmp_path):
    assert len(EXAMPLES) == 18  # one seed per event type
    proc, summary, artifacts = fuzz(tmp_path, RUNS)
    log = proc.stderr  # libFuzzer's lines; atheris prints an uncaught exception on stdout
    assert proc.returncode == 0, (proc.stdout + log)[-4000:]
    assert f"Done {RUNS} runs" in log, log[-2000:]
    assert not list(artifacts.iterdir()), "libFuzzer saved a crashing input"
    seen = json.loads(summary.read_text())
    assert seen["inputs"] >= RUNS - 500  # written every 500 inputs
    # Not vacuous: every reason of the decoder was reached, and every event type was accepted
    # (and then run through the core) many times.
    for reason in ("too_large", "not_json", "not_object", "unknown_type", "invalid_field", "bad_timestamp"):
        assert seen.get(f"reason:{reason}", 0) >= 20, (reason, seen)
    accepted = {k.split(":", 1)[1]: n for k, n in seen.items() if k.startswith("accepted:")}
    assert len(accepted) == 18 and min(accepted.values()) >= 5, accepted
    # coverage grew well beyond the seeds
    cov = [int(m) for m in re.findall(r"cov: (\d+)", log)]
    assert cov and cov[-1] > cov[0] + 200, (cov[:1], cov[-1:])


def test_the_fuzzer_finds_the_crash_the_time_bounds_prevent(tmp_path):
    """Teeth: with the decoder's time bounds lifted, the same run finds the core crash (a record or
    dead-letter edge past year 9999 raises ValueError in format_ts) and saves the input."""
    proc, _, artifacts = fuzz(tmp_path, RUNS, KPI_FUZZ_WITHOUT_TS_BOUNDS="1")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Uncaught Python exception" in out and "fuzz target exited" in out
    assert re.search(r"ValueError: year (10000|0) is out of range|OverflowError: date value out of range", out), out[-3000:]
    crashes = list(artifacts.glob("crash-*"))
    assert len(crashes) == 1
    doc = json.loads(crashes[0].read_bytes())
    assert doc["ts"][:4] in ("9999", "0001", "0000")
