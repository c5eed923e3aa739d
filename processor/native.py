"""`python -m processor.native`: compile the KPI core with mypyc, for `kpi replay` and the workers.

The core is plain Python with type annotations; mypyc turns each module into a C extension that
does the same thing in about a third less time (docs/benchmarks.md#3-december-2026-the-compiled-core-mypyc). The build goes to a cache
folder named after the source's digest (processor.core.native_dir), never beside the source, and
processor.core uses it only while the source is unchanged: after an edit, run this again (or the
source runs as it is, only slower).

    python -m processor.native           # build unless a build of this source is there
    python -m processor.native --force   # build again
    python -m processor.native --check   # exit 1 unless a build of this source is there
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import core


def build(force: bool = False, out=sys.stderr) -> Path:
    """Compile every module of core.COMPILED_MODULES into core.native_dir(); returns that folder."""
    target = core.native_dir()
    if (target / "complete").is_file() and not force:
        print(f"compiled core already built for this source: {target}", file=out)
        return target
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        raise SystemExit(f"processor.native: {exc.name} is missing: pip install -e '.[native]'") from None
    repo = core.HERE.parent.parent
    sources = [f"processor/core/{name}.py" for name in core.COMPILED_MODULES]
    print(f"compiling {len(sources)} modules of processor/core with mypyc (about a minute on 2 cores)...", file=out)
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kpi-native-", dir=target.parent) as tmp:
        staged = Path(tmp) / "build"
        cwd = os.getcwd()
        os.chdir(repo)  # mypyc names the modules from their paths (processor/core/x.py -> processor.core.x)
        try:
            # mypy's settings for the core: [tool.mypy] in pyproject.toml
            extensions = mypycify(["--config-file", "pyproject.toml", *sources], opt_level="3",
                                  target_dir=str(Path(tmp) / "c"))
            os.chdir(tmp)  # not the project's own setuptools configuration: only these extensions
            setup(name="contact-kpi-core-native", ext_modules=extensions, script_args=[
                "--quiet", "build_ext", "--build-lib", str(staged), "--build-temp", str(Path(tmp) / "obj"),
                "--parallel", str(max(1, len(os.sched_getaffinity(0))))])
        finally:
            os.chdir(cwd)
        built = sorted(p.name for p in (staged / "processor" / "core").glob("*.so"))
        if len(built) != len(sources):
            raise SystemExit(f"processor.native: expected {len(sources)} compiled modules, got {built}")
        (staged / "complete").write_text(f"{core.source_digest()}\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)  # whole or not at all: `complete` arrives with everything else
    print(f"compiled core ({len(sources)} modules) in {time.monotonic() - started:.0f} s: {target}", file=out)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processor.native", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build again even if a build of this source is there")
    parser.add_argument("--check", action="store_true", help="only say whether a build of this source is there")
    args = parser.parse_args(argv)
    if args.check:
        found = (core.native_dir() / "complete").is_file()
        print(f"compiled core {'found' if found else 'not built'}: {core.native_dir()}")
        return 0 if found else 1
    build(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
