"""A memory-store table keeps each row as the bytes of its changelog record (processor/app.py PartitionTable)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import orjson

from processor.app import PartitionTable, _owned_rows, _persist, _row_partition, _rows


def _table(store: str = "memory://") -> PartitionTable:
    app = faust.App("rows-test", store=store, broker="kafka://127.0.0.1:1")
    return app.tables.add(PartitionTable(app, name="contacts", partitions=4, beacon=app.tables.beacon))


class _Out:
    """Output.send_record, collected."""

    def __init__(self) -> None:
        self.sent: list = []

    async def send_record(self, topic, src, key, data, partition=None):
        self.sent.append((topic, src, key, data, partition))


def test_persist_keeps_the_changelog_bytes_and_the_rebuild_reads_them_back():
    table = _table()
    out = _Out()
    state = {"events": [["e1", 1700000000000, "contact.created"]], "queue": "sales", "n": 3}
    asyncio.run(_persist(out, table, {"c1": state, "c2": {"x": [1, 2.5, None]}}, 2))
    asyncio.run(_persist(out, table, {"c3": {"y": "z"}}, 1))
    assert table.keeps_bytes()
    assert table.data.data["c1"] == orjson.dumps([2, state])  # the record sent, not a decoded copy
    assert [(k, v) for _, _, k, v, _ in out.sent if k == b'"c1"'] == [(b'"c1"', table.data.data["c1"])]
    assert sorted(_rows(table, {2})) == [("c1", 2, state), ("c2", 2, {"x": [1, 2.5, None]})]
    books = {1: "book-1"}
    assert list(_owned_rows(table, books)) == [("c3", "book-1", {"y": "z"})]
    asyncio.run(_persist(out, table, {"c1": None, "gone": None}, 2))  # a delete; an unknown key sends nothing
    assert "c1" not in table.data.data and out.sent[-1][2:4] == (b'"c1"', None)
    assert len(out.sent) == 4


def test_changelog_records_read_by_recovery_are_kept_as_bytes_and_deletes_remove_rows():
    table = _table()

    def event(key, raw, partition):
        return SimpleNamespace(key=key, value=orjson.loads(raw) if raw else None,
                               message=SimpleNamespace(value=raw, partition=partition))

    table.apply_changelog_batch([event("a", b'[0,{"k":1}]', 0), event("b", b'[3,[1,2]]', 3),
                                 event("c", b'[3,"x"]', 3)])
    table.apply_changelog_batch([event("c", None, 3)])
    assert table.data.data == {"a": b'[0,{"k":1}]', "b": b'[3,[1,2]]'}
    assert sorted(_rows(table, {0, 3})) == [("a", 0, {"k": 1}), ("b", 3, [1, 2])]
    assert list(_rows(table, {1})) == []


def test_a_kept_row_takes_its_length_in_memory_not_the_serializers_buffer():
    import tracemalloc

    table = _table()
    dirty = {f"c{i}": {"n": i} for i in range(2000)}
    tracemalloc.start()
    try:
        asyncio.run(_persist(_Out(), table, dirty, 0))
        rows = table.data.data
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 2000
    # orjson's own result would hold about 4 KiB each (8 MB here); exact copies hold about 50 bytes
    assert used < 2000 * 1024, used


def test_the_partition_is_read_from_the_bytes_without_decoding_the_value():
    assert _row_partition(b'[0,{"a":1}]') == 0
    assert _row_partition(b'[17,null]') == 17
    assert _row_partition(orjson.dumps([1023, ["x", 1]])) == 1023
