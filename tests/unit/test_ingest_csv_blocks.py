"""`kpi ingest csv` reads a block of lines at a time (processor/ingest/shell.py csv_row_batches):
whatever the line endings, quotes and block boundaries, the rows are those `csv.reader` gives of the
file (less the empty lines, which hold no row), in order."""
from __future__ import annotations

import csv
import io

import pytest

from processor.ingest.shell import csv_row_batches

CASES = {
    "plain": "id;q\nc1;billing\nc2;sales\n",
    "no final newline": "id;q\nc1;billing\nc2;sales",
    "crlf": "id;q\r\nc1;billing\r\nc2;sales\r\n",
    "empty lines": "id;q\n\nc1;billing\n\n\nc2;sales\n",
    "lone carriage returns": "id;q\rc1;billing\rc2;sales\r",
    "quoted field over two lines": "id;q\nc1;\"bil\nling\"\nc2;sales\n",
    "quote late in the file": "id;q\n" + "c1;billing\n" * 50 + "c2;\"a;b\"\n" + "c3;x\n" * 5,
    "trailing delimiter": "id;q;\nc1;billing;\n",
    "spaces kept": "id ; q\n c1 ; billing \n",
}


def _expected(text: str, delimiter: str) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if row]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_rows_are_those_of_the_csv_module(name, block):
    text = CASES[name]
    got = [row for batch in csv_row_batches(io.StringIO(text, newline=""), ";", block) for row in batch]
    assert got == _expected(text, ";")


def test_a_comma_file_with_many_blocks_keeps_every_row_in_order():
    text = "".join(f"c{i},q{i % 3},{i}\n" for i in range(5000))
    batches = list(csv_row_batches(io.StringIO(text, newline=""), ",", 4096))
    assert len(batches) > 10
    assert [row for batch in batches for row in batch] == _expected(text, ",")
