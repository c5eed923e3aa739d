"""A memory-store table keeps each row as the bytes of its changelog record (processor/worker/tables.py PartitionTable)."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import orjson

from processor.worker.tables import PartitionTable, owned_rows, persist, row_partition, rows


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
    asyncio.run(persist(out, table, {"c1": state, "c2": {"x": [1, 2.5, None]}}, 2))
    asyncio.run(persist(out, table, {"c3": {"y": "z"}}, 1))
    assert table.keeps_bytes()
    assert table.data.data[(2, "c1")] == orjson.dumps([2, state])  # the record sent, not a decoded copy
    assert [(k, v) for _, _, k, v, _ in out.sent if k == b'"c1"'] == [(b'"c1"', table.data.data[(2, "c1")])]
    assert sorted(rows(table, {2})) == [("c1", 2, state), ("c2", 2, {"x": [1, 2.5, None]})]
    books = {1: "book-1"}
    assert list(owned_rows(table, books)) == [("c3", "book-1", {"y": "z"})]
    asyncio.run(persist(out, table, {"c1": None, "gone": None}, 2))  # a delete; an unknown key sends nothing
    assert (2, "c1") not in table.data.data and out.sent[-1][2:4] == (b'"c1"', None)
    assert len(out.sent) == 4


def test_changelog_records_read_by_recovery_are_kept_as_bytes_and_deletes_removerows():
    table = _table()

    def event(key, raw, partition):
        return SimpleNamespace(key=key, value=orjson.loads(raw) if raw else None,
                               message=SimpleNamespace(value=raw, partition=partition))

    table.apply_changelog_batch([event("a", b'[0,{"k":1}]', 0), event("b", b'[3,[1,2]]', 3),
                                 event("c", b'[3,"x"]', 3)])
    table.apply_changelog_batch([event("c", None, 3)])
    assert table.data.data == {(0, "a"): b'[0,{"k":1}]', (3, "b"): b'[3,[1,2]]'}
    assert sorted(rows(table, {0, 3})) == [("a", 0, {"k": 1}), ("b", 3, [1, 2])]
    assert list(rows(table, {1})) == []


def test_a_kept_row_takes_its_length_in_memory_not_the_serializers_buffer():
    import tracemalloc

    table = _table()
    dirty = {f"c{i}": {"n": i} for i in range(2000)}
    tracemalloc.start()
    try:
        asyncio.run(persist(_Out(), table, dirty, 0))
        rows = table.data.data
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows) == 2000
    # orjson's own result would hold about 4 KiB each (8 MB here); exact copies hold about 50 bytes
    assert used < 2000 * 1024, used


def test_the_partition_is_read_from_the_bytes_without_decoding_the_value():
    assert row_partition(b'[0,{"a":1}]') == 0
    assert row_partition(b'[17,null]') == 17
    assert row_partition(orjson.dumps([1023, ["x", 1]])) == 1023


def _record(partition: int, offset: int, key: str, raw: bytes | None):
    from aiokafka.structs import ConsumerRecord

    return ConsumerRecord("t-changelog", partition, offset, 0, 0, orjson.dumps(key), raw, None, 1,
                          len(raw or b""), ())


def test_fetched_changelog_records_give_the_same_rows_as_faust_events():
    by_events, by_records = _table(), _table()

    def event(key, raw, partition):
        return SimpleNamespace(key=key, value=orjson.loads(raw) if raw else None,
                               message=SimpleNamespace(value=raw, partition=partition))

    feed = [("a", b'[0,{"k":1}]', 0), ("b", b'[0,[1,2]]', 0), ("a", b'[0,{"k":2}]', 0), ("b", None, 0),
            ("c|x\u00e9", b'[0,"y"]', 0)]
    by_events.apply_changelog_batch([event(k, v, p) for k, v, p in feed])
    by_records.apply_changelog_records([_record(p, i, k, v) for i, (k, v, p) in enumerate(feed)])
    assert by_records.data.data == by_events.data.data == {(0, "a"): b'[0,{"k":2}]', (0, "c|x\u00e9"): b'[0,"y"]'}
    assert by_records.data._key_partition == by_events.data._key_partition


def test_changelog_records_keep_the_recovery_offsets_and_end_the_recovery_when_caught_up():
    from faust.types import TP

    from processor.worker.patches import changelog_records

    table = _table()
    app = table.app
    recovery = app.tables.recovery
    tp, standby_tp = TP(table.changelog_topic.get_topic_name(), 0), TP(table.changelog_topic.get_topic_name(), 1)
    recovery.tp_to_table.update({tp: table, standby_tp: table})
    recovery.active_tps.add(tp)
    recovery.standby_tps.add(standby_tp)
    recovery.active_highwaters[tp] = 3
    recovery.standby_highwaters[standby_tp] = 0
    recovery.active_offsets[tp] = 0  # offset 0 applied already: not again
    recovery.in_recovery = True
    consumer = SimpleNamespace(app=app)
    applied = changelog_records(consumer, tp, [_record(0, 0, "old", b'[0,"stale"]'), _record(0, 1, "a", b'[0,1]'),
                                               _record(0, 2, "b", b'[0,2]')])
    assert applied and table.data.data == {(0, "a"): b"[0,1]", (0, "b"): b"[0,2]"}
    assert recovery.active_offsets[tp] == 2 and recovery.in_recovery  # highwater 3 not reached
    assert not recovery.signal_recovery_end.is_set()
    assert changelog_records(consumer, tp, [_record(0, 3, "a", None)])
    assert table.data.data == {(0, "b"): b"[0,2]"}
    assert not recovery.in_recovery and recovery.signal_recovery_end.is_set()  # caught up: as Faust's loop
    assert changelog_records(consumer, standby_tp, [_record(1, 0, "s", b'[1,"s"]')])
    assert recovery.standby_offsets[standby_tp] == 0 and table.data.data[(1, "s")] == b'[1,"s"]'
    assert app.tables.standbys_ready
    assert not changelog_records(consumer, TP(tp.topic, 2), [_record(2, 0, "x", b'[2,1]')])  # not tracked: Faust's path
    assert (2, "x") not in table.data.data


def test_the_end_of_recovery_signal_survives_faust_clearing_it_outside_recovery():
    from processor.worker import intake

    table = _table()
    app = table.app
    intake.manage(app, {})
    recovery = app.tables.recovery
    recovery.in_recovery = True
    recovery.signal_recovery_end.set()
    recovery.signal_recovery_end.clear()  # in recovery: Faust's loop clears it at each turn
    assert not recovery.signal_recovery_end.is_set()
    recovery.signal_recovery_end.set()
    recovery._set_recovery_ended()
    recovery.signal_recovery_end.clear()  # a turn of Faust's loop after the end: the set stays
    assert recovery.signal_recovery_end.is_set()
    recovery._set_recovery_started()  # the next recovery starts with it cleared
    assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()


# -- issue 24 A: one key in two partitions (a contribution `rs|<contact>` moving from queue `none`,
# facts partition 0, to its real queue, partition 2) ------------------------------------------

def _moved(order: list[int]) -> PartitionTable:
    """Changelog partition 0: insert then delete of `rs|c1`; partition 2: its insert. Recovered
    one partition after the other, in `order`."""
    table = _table()
    logs = {0: [_record(0, 0, "rs|c1", b'[0,{"q":"none"}]'), _record(0, 1, "rs|c1", None)],
            2: [_record(2, 0, "rs|c1", b'[2,{"q":"sales"}]')]}
    for p in order:
        table.apply_changelog_records(logs[p])
    return table


def test_a_key_moved_to_another_partition_is_rebuilt_whatever_order_the_partitions_are_recovered_in():
    for order in ([0, 2], [2, 0]):
        table = _moved(order)
        assert list(rows(table, {0, 1, 2, 3})) == [("rs|c1", 2, {"q": "sales"})], order


def test_a_delete_in_one_partition_leaves_the_same_key_of_another_partition_alone():
    table, out = _table(), _Out()
    asyncio.run(persist(out, table, {"rs|c1": {"q": "none"}}, 0))
    asyncio.run(persist(out, table, {"rs|c1": {"q": "sales"}}, 2))  # stage two applied the insert first
    asyncio.run(persist(out, table, {"rs|c1": None}, 0))  # then the delete of partition 0
    assert list(rows(table, {0, 1, 2, 3})) == [("rs|c1", 2, {"q": "sales"})]
    assert [(p, k, v) for _, _, k, v, p in out.sent][-1] == (0, b'"rs|c1"', None)  # the tombstone goes to partition 0
    asyncio.run(persist(out, table, {"rs|c1": None}, 1))  # nothing in partition 1: nothing sent
    assert len(out.sent) == 3
