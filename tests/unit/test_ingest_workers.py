"""`kpi ingest csv --workers N` (processor/ingest/pool.py): rows mapped by N processes give the output
of one process byte for byte, with the same progress lines, summary, errors and exit status.

The files are generated (scripts/bench_ingest.py's seeded export, ~2 MB: a few dozen blocks of
256 KiB for the workers, so block boundaries fall inside the reorder window) with quirks spliced in:
rows moved far back (late for a short window: the parent maps their block again), broken rows,
blank lines, non-ASCII identifiers, and, from some point on, quoted fields (then rows go through the
csv module, in groups)."""
from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "deploy" / "config" / "csv-mapping.example.yaml"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "scripts" / "bench_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _quirky(path: Path, rows: int, quoted_from: int | None) -> None:
    _bench().write_csv(path, rows, seed=11)
    lines = path.read_text().splitlines()
    rnd = random.Random(5)
    header, body = lines[0], lines[1:]
    for _ in range(40):  # a row moved 100-3000 rows back: minutes to an hour before its neighbours
        i = rnd.randrange(3000, len(body))
        body.insert(i - rnd.randint(100, 3000), body.pop(i))
    for i in sorted(rnd.sample(range(len(body)), 60), reverse=True):
        kind = i % 6
        cells = body[i].split(";")
        if kind == 0:
            body[i] = ";".join(cells[:4])  # missing fields
        elif kind == 1:
            body[i] = ";".join(cells[:6] + ["Weird"] + cells[7:])  # unknown outcome
        elif kind == 2:
            body[i] = ";".join(cells[:2] + ["25:99:00"] + cells[3:])  # unreadable time
        elif kind == 3:
            body.insert(i, "")  # a blank line
        elif kind == 4:
            body[i] = ";".join(["Ç" + cells[0]] + cells[1:9] + ["agent é"] + cells[10:])
        else:
            body[i] = ";".join(cells[:5] + [cells[4]] + cells[6:])  # zero-second wait
    if quoted_from is not None:
        cells = body[quoted_from].split(";")
        body[quoted_from] = ";".join(cells[:3] + ['"bil;ling"'] + cells[4:])
    path.write_text("\n".join([header, *body]) + "\n", encoding="utf-8")


def _run(src: Path, out: Path, *args: str) -> tuple[int, list[str], bytes]:
    done = subprocess.run([sys.executable, "-m", "processor.cli", "ingest", "csv", "--mapping", str(MAPPING),
                           *args, str(src), "--output", str(out)], capture_output=True, text=True, timeout=300)
    said = [line for line in done.stderr.splitlines() if " -> " not in line and not line.startswith("events sent")]
    return done.returncode, said, out.read_bytes() if out.exists() else b""


@pytest.mark.parametrize("window", ["3600", "600", "60"])
@pytest.mark.parametrize("quoted_from", [None, 15_000])
def test_workers_give_the_output_of_one_process(window, quoted_from, tmp_path):
    src = tmp_path / "calls.csv"
    _quirky(src, 20_000, quoted_from)
    code, said, one = _run(src, tmp_path / "one.jsonl", "--workers", "1", "--reorder-seconds", window)
    assert code == 0 and len(one) > 1_000_000, said
    assert any(line.startswith("  skipped") for line in said) and any("rows read" in line for line in said[:-3])
    for workers in ("2", "3"):
        got = _run(src, tmp_path / f"w{workers}.jsonl", "--workers", workers, "--reorder-seconds", window)
        assert got == (code, said, one), workers


def test_errors_deep_in_the_file_are_said_alike(tmp_path):
    src = tmp_path / "calls.csv"
    _quirky(src, 20_000, None)
    data = src.read_bytes()
    bad = tmp_path / "bad.csv"  # not UTF-8 at 9/10 of the file
    bad.write_bytes(data[: len(data) * 9 // 10] + b"\xff" + data[len(data) * 9 // 10:])
    huge = tmp_path / "huge.csv"  # a quoted field over csv's field size limit, after rows read by blocks
    lines = data.decode().splitlines(keepends=True)
    huge.write_text("".join(lines[:16_000]) + 'X1;23/11/2026;10:00:00;"' + "q" * 200_000 + '";\n' + "".join(lines[16_000:]))
    for src in (bad, huge):
        one = _run(src, tmp_path / "one.jsonl", "--workers", "1")
        assert one[0] == 2 and one[1][-1].startswith("kpi ingest csv: "), one[1]
        assert one[2] and "rows read" in one[1][0]  # a first batch was written before the error
        assert _run(src, tmp_path / "two.jsonl", "--workers", "2") == one


def test_workers_must_be_a_small_positive_number(tmp_path):
    done = subprocess.run([sys.executable, "-m", "processor.cli", "ingest", "csv", "--mapping", str(MAPPING),
                           "--workers", "0", "x.csv"], capture_output=True, text=True)
    assert done.returncode == 2 and "--workers" in done.stderr and "Traceback" not in done.stderr
