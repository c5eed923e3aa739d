"""Pure KPI core: no I/O, no framework imports, no clock. Event time is always an argument.

The same source also runs compiled: `python -m processor.native` (run by scripts/setup.sh) compiles
the core's modules with mypyc into a cache folder named after a digest of their source. Imported
here, a compiled build is used only when it was built from exactly the source in this folder, so an
edited module is never shadowed by an old build; anything else (no build, another Python,
KPI_PURE_PYTHON=1) runs the source as it is. Both give the same records, byte for byte
(tests/unit/test_native_core.py); the compiled one takes about a third less time (docs/benchmarks.md#3-december-2026-the-compiled-core-mypyc).
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

PURE_ENV = "KPI_PURE_PYTHON"  # 1: run the source even when a compiled build is there
HERE = Path(__file__).resolve().parent
# settings.py is configuration (read once, nothing per event): compiled, its float fields would turn an
# integer from the YAML file into a float.
NOT_COMPILED = frozenset({"__init__", "settings"})
COMPILED_MODULES = tuple(sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_COMPILED))


def source_digest() -> str:
    """What a compiled build is valid for: every compiled module's source, and the Python it runs on."""
    h = hashlib.sha256(f"{sys.implementation.cache_tag}|{sys.version}|".encode())
    for name in COMPILED_MODULES:
        h.update(name.encode() + b"\0" + (HERE / f"{name}.py").read_bytes() + b"\0")
    return h.hexdigest()[:24]


def native_dir() -> Path:
    """The folder holding the compiled build of this source (it may not exist)."""
    cache = os.environ.get("KPI_CACHE_DIR") or Path.home() / ".cache" / "contact-kpi"
    return Path(cache) / "native" / source_digest()


def _use_compiled() -> bool:
    if os.environ.get(PURE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    build = native_dir()
    if not (build / "complete").is_file():  # written last by processor.native
        return False
    sys.path.append(str(build))  # the library the compiled modules share (a top-level module of its own)
    __path__.insert(0, str(build / "processor" / "core"))  # noqa: F821 - a package's own search path
    return True


COMPILED = _use_compiled()


def describe() -> str:
    """Which core this process runs, for the commands' start and summary lines."""
    if COMPILED:
        return "KPI core compiled (mypyc)"
    why = f"{PURE_ENV} is set" if os.environ.get(PURE_ENV) else "`python -m processor.native` compiles it"
    return f"KPI core running from source ({why})"
