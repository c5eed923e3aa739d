"""The README's two set-up commands are the ones CI and users run: keep them in step."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_COMMAND = "bash scripts/setup.sh && python -m pytest"
MAIN_COMMAND = "bash scripts/setup.sh && kpi run"


def _code_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)]


def test_readme_quick_start_has_the_two_commands():
    blocks = _code_blocks((ROOT / "README.md").read_text())
    assert MAIN_COMMAND in blocks
    assert TEST_COMMAND in blocks


def test_ci_runs_the_readme_test_command_and_nothing_less():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert TEST_COMMAND in lines
    assert "set -euo pipefail" in lines  # a failing step fails CI


def test_setup_script_installs_what_the_tests_start():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    for package in ("redis-server", "prometheus", "chromium", "chromium-driver", "maven", "gcc"):
        assert package in setup, package
    assert "--ensure-jars" in setup  # the Apache Kafka jars from Maven Central
    assert "pip install" in setup and ".[test,native]" in setup.replace('"', "").replace("'", "")
    assert "-m processor.native\n" in setup.replace(" 2>&1 |", "\n") and "-m processor.native --check" in setup
