"""Fixtures shared by the unit tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bench():
    """scripts/benchlib, the library scripts/bench.py and soak_steady.py read and check with (not a package
    of the project: loaded from its folder, once)."""
    if "benchlib" in sys.modules:
        return sys.modules["benchlib"]
    folder = ROOT / "scripts" / "benchlib"
    spec = importlib.util.spec_from_file_location("benchlib", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchlib"] = module
    spec.loader.exec_module(module)
    return module
