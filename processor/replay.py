"""`kpi replay`: the core over a JSON-lines file, no broker. Same books, same records as streaming."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Iterable

from . import deadletter
from .core.pipeline import Pipeline
from .core.settings import EngineSettings
from .decode import BadEvent, decode


def replay_lines(lines: Iterable[bytes], engine: EngineSettings, out: IO[str], dead: IO[str] | None = None,
                 flush: bool = True, progress: IO[str] | None = None) -> Pipeline:
    """Feed every line through the pipeline, writing rollup records (and dead letters) as JSON lines."""
    pipeline = Pipeline(engine)
    rejected = 0
    started = last = time.monotonic()
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            event = decode(raw)
        except BadEvent as exc:
            rejected += 1
            if dead is not None:
                dead.write(deadletter.dumps(deadletter.from_raw(exc.reason, exc.detail, raw.rstrip(b"\n"))).decode() + "\n")
            continue
        records, dead_letters = pipeline.feed(event)
        for rec in records:
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        if dead is not None:
            for dl in dead_letters:
                dead.write(deadletter.dumps(deadletter.from_core(dl)).decode() + "\n")
        if progress is not None and n % 10_000 == 0 and time.monotonic() - last >= 1:
            last = time.monotonic()
            progress.write(f"\r  {n:,} lines, {n / (last - started):,.0f} events/s")
            progress.flush()
    for rec in pipeline.finish(flush=flush):
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    pipeline.counts.dead_letters += rejected
    if progress is not None:
        progress.write("\r" + " " * 60 + "\r")
    return pipeline


def run_replay(input_path: Path, output_path: Path, engine: EngineSettings, dead_path: Path | None, flush: bool) -> int:
    started = time.monotonic()
    dead = open(dead_path, "w") if dead_path else None
    try:
        with open(input_path, "rb") as src, open(output_path, "w") as out:
            pipeline = replay_lines(src, engine, out, dead, flush=flush, progress=sys.stderr)
    finally:
        if dead is not None:
            dead.close()
    elapsed = time.monotonic() - started
    c = pipeline.counts
    rate = c.events / elapsed if elapsed > 0 else float("inf")
    print(f"replayed {c.events:,} events in {elapsed:.2f} s ({rate:,.0f} events/s): "
          f"{c.records:,} rollup records, {c.duplicates:,} duplicates ignored, {c.dead_letters:,} dead-lettered",
          file=sys.stderr)
    print(f"rollups written to {output_path}", file=sys.stderr)
    if dead_path:
        print(f"dead letters written to {dead_path}", file=sys.stderr)
    return 0
