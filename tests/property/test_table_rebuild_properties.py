"""The table-rebuild path: whatever order recovery reads the changelog partitions in, and whatever
compaction left of them, the rebuilt rows (the books' only input) equal the rows written live.

Issue 24: one key lives in two partitions when a contribution moves from one queue's partition to
another's (`rs|<contact>`: a delete in one changelog partition, an insert in another).
"""
from __future__ import annotations

import faust
import orjson
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.worker.tables import PartitionTable

PARTITIONS = 4
KEYS = ["rs|c1", "rs|c2", "rs|c3", "f|x"]


def _table() -> PartitionTable:
    app = faust.App("rebuild-property", store="memory://", broker="kafka://127.0.0.1:1")
    return app.tables.add(PartitionTable(app, name="queue-facts", partitions=PARTITIONS, beacon=app.tables.beacon))


def _rows(table: PartitionTable) -> dict:
    """(partition, key) -> value of every row, decoded."""
    out = {}
    for (partition, key), raw in table.items():
        p, value = orjson.loads(raw)
        assert p == partition
        out[(partition, key)] = value
    return out


# A live history: each step writes (an upsert) or deletes a key in a partition, as stage two does.
write = st.tuples(st.integers(0, PARTITIONS - 1), st.sampled_from(KEYS), st.one_of(st.none(), st.integers(0, 99)))


def _compacted(log: list, keep_tombstones: bool, cut: int) -> list:
    """Kafka's log compaction of one partition: the head before `cut` keeps only each key's last record
    (tombstones possibly removed); the tail after it is untouched."""
    head, tail = log[:cut], log[cut:]
    last = {}
    for offset, (key, value) in enumerate(head):
        last[key] = offset
    kept = [(o, r) for o, r in enumerate(head) if last[r[0]] == o and (keep_tombstones or r[1] is not None)]
    return kept + [(cut + i, r) for i, r in enumerate(tail)]


@settings(max_examples=300, deadline=None)
@given(history=st.lists(write, max_size=60), data=st.data())
def test_rebuilt_rows_do_not_depend_on_recovery_order_or_compaction(history, data):
    live = _table()
    logs: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    for p, key, value in history:
        if value is None:
            if live.delete_row(p, key):
                logs[p].append((key, None))  # a tombstone, as worker/tables.py persist sends it
        else:
            raw = orjson.dumps([p, {"v": value}])
            live.put_row(p, key, raw)
            logs[p].append((key, raw))

    # Each partition's changelog as the broker may hold it after compaction, read in fetches.
    fetches: dict[int, list] = {}
    for p, log in logs.items():
        cut = data.draw(st.integers(0, len(log)), label=f"compacted head of {p}")
        records = [ConsumerRecord("t-changelog", p, o, 0, 0, orjson.dumps(k), v, None, 1, len(v or b""), ())
                   for o, (k, v) in _compacted(log, data.draw(st.booleans(), label="tombstones kept"), cut)]
        sizes = data.draw(st.lists(st.integers(1, 5), min_size=len(records), max_size=len(records)), label="fetch sizes")
        chunks, i = [], 0
        for n in sizes:
            if i < len(records):
                chunks.append(records[i:i + n])
                i += n
        fetches[p] = chunks

    # Recovery interleaves the partitions' fetches in any order (each partition's own in offset order).
    rebuilt = _table()
    pending = {p: list(chunks) for p, chunks in fetches.items() if chunks}
    while pending:
        p = data.draw(st.sampled_from(sorted(pending)), label="next partition read")
        rebuilt.apply_changelog_records(pending[p].pop(0))
        if not pending[p]:
            del pending[p]

    assert _rows(rebuilt) == _rows(live)
