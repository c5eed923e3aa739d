"""Tables and persistence: the changelog-backed rows the books are rebuilt from.

Tables are plain keyed, changelog-backed state (no Faust windows: their expiry runs on wall-clock
time and they lose windows on rebalance). Each row carries the partition it belongs to
(`[partition, value]`), so a worker rebuilds only what it owns (`rows`, worker/recovery.py).
A stage persists what a batch changed (`persist_taken`, `persist_pair`): the rows into the store,
their changelog records through the worker's Output. A housekeeping slice writes what it expired
the same way without suspending (`write_taken`, `write_pair`), under its stage's lock, and waits
for the producer after releasing it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import faust
import orjson
from faust.stores.memory import Store as MemoryStore

from ..loophold import Slicer

if TYPE_CHECKING:
    from .output import Output

TAKE_LIMIT = 200              # changed keys serialised by one take_dirty call between two looks at the clock


@dataclass
class Tables:
    """The worker's eight tables (keys and values are JSON, Faust's default for tables)."""

    contacts: "PartitionTable"
    agents: "PartitionTable"
    facts: "PartitionTable"         # stage two: queue facts by fact id
    published: "PartitionTable"     # stage two: what each queue has published
    profiles: "PartitionTable"      # stage one: contacts no longer in progress (profile only)
    agent_ids: "PartitionTable"     # stage one: each agent's event ids within the retention
    customers: "PartitionTable"     # stage one: each customer's churn event ids (retention)
    journeys: "PartitionTable"      # journey facts by fact id


def add_tables(app: faust.App, partitions: int) -> Tables:
    def table(name: str) -> PartitionTable:
        return app.tables.add(PartitionTable(app, name=name, partitions=partitions, beacon=app.tables.beacon))

    return Tables(contacts=table("contacts"), agents=table("agents"), facts=table("queue-facts"),
                  published=table("published"), profiles=table("profiles"), agent_ids=table("agent-event-ids"),
                  customers=table("customers"), journeys=table("journey-facts"))


class PartitionTable(faust.Table):
    """A table whose writes name their changelog partition, and whose memory store keeps bytes.

    Faust takes the partition from the event being processed; an agent that handles a batch
    spanning several partitions must say which partition each key belongs to.

    Faust's memory store keeps each row decoded, a second copy of the books' state as Python
    objects (lists, dicts, strings): the worker's memory was about twice that of the same feed
    through the core alone. Here it keeps the row's changelog record, the JSON bytes
    `[partition, value]`: what `persist` sends, and what recovery and standby replicas read.
    Rows are decoded only when the books are rebuilt (`rows`). The RocksDB store keeps bytes anyway.

    A row is stored under (partition, key), not under its key alone (issue 24): the same key can
    live in two partitions at once, e.g. the contribution `rs|<contact>` moving from queue `none`
    (facts partition 0) to its real queue (partition 2) is a delete in changelog partition 0 and an
    insert in partition 2. Keyed by the key alone, the delete removed the live row whichever came
    second, live or in recovery (whose order across partitions is arbitrary). Keyed by partition,
    each changelog partition rebuilds its own rows only: the result cannot depend on the order in
    which partitions are read. The changelog records are unchanged (the partition is the record's).
    """

    _write_partition: int | None = None

    def keeps_bytes(self) -> bool:
        return type(self.data) is MemoryStore

    def apply_changelog_batch(self, batch) -> None:
        """Changelog events (Faust's per-message recovery path) into the store: as their bytes in a memory store."""
        if not self.keeps_bytes():
            return super().apply_changelog_batch(batch)
        self._keep_rows((self._to_key(event.key), event.message.value, event.message.partition) for event in batch)

    def apply_changelog_records(self, records: list) -> None:
        """Fetched changelog records, undecoded (patches.changelog_records): keys are JSON, as Faust's
        table key serializer writes them; values are kept as they are."""
        to_key, loads = self._to_key, orjson.loads
        self._keep_rows((to_key(loads(r.key)), r.value, r.partition) for r in records)

    def _keep_rows(self, rows_in) -> None:
        store = self.data
        rows, partitions = store.data, store._key_partition
        for key, value, partition in rows_in:
            at = (partition, key)
            if value is None:
                rows.pop(at, None)
                partitions.pop(at, None)
            else:
                rows[at] = bytes(value)
                partitions[at] = partition  # Faust's memory store drops rows of partitions not assigned any more

    def put_row(self, partition: int, key, row) -> None:
        """A live write of `key`'s row in `partition` (bytes in a memory store, `[partition, value]` otherwise)."""
        store = self.data
        if self.keeps_bytes():
            at = (partition, key)
            store.data[at] = row
            store._key_partition[at] = partition
            return
        self._write_partition = partition  # the RocksDB store writes to that partition's database
        try:
            store[key] = row
        finally:
            self._write_partition = None

    def delete_row(self, partition: int, key) -> bool:
        """Delete `key`'s row in `partition` only (the same key in another partition is another row);
        False when there was none."""
        store = self.data
        if self.keeps_bytes():
            at = (partition, key)
            if store.data.pop(at, None) is None:
                return False
            store._key_partition.pop(at, None)
            return True
        return store.delete_in(partition, key)

    def partition_for_key(self, key):
        if self._write_partition is not None:
            return self._write_partition
        return super().partition_for_key(key)

    def _new_store_by_url(self, url):
        if str(url).startswith("rocksdb:"):
            return partition_rocksdb_store()(
                url, self.app, self, table_name=self.name, key_type=self.key_type,
                key_serializer=self.key_serializer, value_serializer=self.value_serializer,
                value_type=self.value_type, loop=self.loop, options=self.options)
        return super()._new_store_by_url(url)


def partition_rocksdb_store():
    """Faust's RocksDB store, writing each key to the local database of the partition its write names.

    Faust's store takes the partition from the event being processed, which is wrong for a batch
    spanning partitions (and there is none in a timer); reads then look a key up in every open
    partition database (the store's key index makes that one lookup in the common case).
    """
    from faust.stores.rocksdb import Store

    class PartitionRocksDBStore(Store):
        def _set(self, key: bytes, value: bytes | None) -> None:
            partition = self.table._write_partition
            if partition is None:
                return super()._set(key, value)
            self._key_index[key] = partition
            self._db_for_partition(partition).put(key, value)

        def _get(self, key: bytes) -> bytes | None:
            found = self._get_bucket_for_key(key)
            return None if found is None else found[1]

        def _contains(self, key: bytes) -> bool:
            return self._get_bucket_for_key(key) is not None

        def delete_in(self, partition: int, key) -> bool:
            """Delete `key` from that partition's database only (Faust's delete removes it from all)."""
            raw = self._encode_key(key)
            db = self._db_for_partition(partition)
            if db.get(raw) is None:
                return False
            db.delete(raw)
            if self._key_index.get(raw) == partition:
                del self._key_index[raw]
            return True

    return PartitionRocksDBStore


async def persist(out: "Output", table: PartitionTable, dirty: dict, partition: int, slicer: Slicer | None = None) -> None:
    """A batch's changed keys into the table's store, and their changelog records to `partition`.

    The records are sent as plain producer records rather than through Faust's table writes (one
    FutureMessage each, the largest cost of a batch); Faust's recovery reads them like its own."""
    if not dirty:
        return
    topic = table.changelog_topic.get_topic_name()
    keeps_bytes = table.keeps_bytes()
    for key, value in dirty.items():
        if slicer is not None:
            await slicer.pause()
        changed, data = store_row(table, partition, key, value, keeps_bytes)
        if changed:
            await out.send_record(topic, partition, dumps(key), data, partition)


def write(out: "Output", table: PartitionTable, dirty: dict, partition: int) -> None:
    """As persist, without ever suspending: the records are appended to the Output's batches
    (Output.append_record), and handed to the producer by whoever submits next. For a housekeeping
    slice, which writes under its stage's lock and waits for the producer only after releasing it."""
    if not dirty:
        return
    topic = table.changelog_topic.get_topic_name()
    keeps_bytes = table.keeps_bytes()
    for key, value in dirty.items():
        changed, data = store_row(table, partition, key, value, keeps_bytes)
        if changed:
            out.append_record(topic, partition, dumps(key), data, partition)


def store_row(table: PartitionTable, partition: int, key, value, keeps_bytes: bool) -> tuple[bool, bytes | None]:
    """One changed key into the store; returns (whether a changelog record is due, its value)."""
    if value is None:
        return table.delete_row(partition, key), None  # this partition's row only (see PartitionTable)
    row = [partition, value]
    data = dumps(row)
    # orjson's result keeps its whole write buffer (about 4 KiB whatever the length): a
    # row kept in the store is an exact-size copy.
    table.put_row(partition, key, bytes(memoryview(data)) if keeps_bytes else row)
    return True, data


async def persist_taken(out: "Output", table: PartitionTable, take, partition: int, slicer: Slicer) -> None:
    """`take(limit)` (a book's take_dirty…) called again and again, TAKE_LIMIT keys at a time, each part
    persisted (see persist): serialising every key a batch changed at once held the loop too long."""
    while True:
        dirty = take(TAKE_LIMIT)
        await persist(out, table, dirty, partition, slicer)
        if len(dirty) < TAKE_LIMIT:
            return
        await slicer.pause()


async def persist_pair(out: "Output", take, first: PartitionTable, second: PartitionTable, partition: int,
                        slicer: Slicer) -> None:
    """As persist_taken, for a book whose `take_dirty(limit)` returns two kinds of keys at once."""
    while True:
        dirty_first, dirty_second = take(TAKE_LIMIT)
        await persist(out, first, dirty_first, partition, slicer)
        await persist(out, second, dirty_second, partition, slicer)
        if len(dirty_first) + len(dirty_second) < TAKE_LIMIT:
            return
        await slicer.pause()


def write_taken(out: "Output", table: PartitionTable, take, partition: int, due=lambda: False) -> bool:
    """As persist_taken, without suspending (see write): TAKE_LIMIT keys at a time until none is left
    (True) or `due()` says the slice is used up (False: the rest stays dirty in the book, for whoever
    holds the stage's lock next: the book gives each key's value as it is then, so the order holds)."""
    while True:
        dirty = take(TAKE_LIMIT)
        write(out, table, dirty, partition)
        if len(dirty) < TAKE_LIMIT:
            return True
        if due():
            return False


def write_pair(out: "Output", take, first: PartitionTable, second: PartitionTable, partition: int,
               due=lambda: False) -> bool:
    """As persist_pair, without suspending (see write_taken)."""
    while True:
        dirty_first, dirty_second = take(TAKE_LIMIT)
        write(out, first, dirty_first, partition)
        write(out, second, dirty_second, partition)
        if len(dirty_first) + len(dirty_second) < TAKE_LIMIT:
            return True
        if due():
            return False


async def persist_all(out: "Output", write_set: list, partition: int, slicer: Slicer) -> None:
    """A write set's changed keys (see stages.write_set_one): each (take, table) or (take, first, second)."""
    for take, *tables in write_set:
        if len(tables) == 2:
            await persist_pair(out, take, tables[0], tables[1], partition, slicer)
        else:
            await persist_taken(out, tables[0], take, partition, slicer)


def write_all(out: "Output", write_set: list, partition: int, due=lambda: False) -> bool:
    """As persist_all, without suspending; False when `due()` cut it (see write_taken)."""
    for take, *tables in write_set:
        if len(tables) == 2:
            done = write_pair(out, take, tables[0], tables[1], partition, due)
        else:
            done = write_taken(out, tables[0], take, partition, due)
        if not done:
            return False
    return True


def dumps(value) -> bytes:
    """Compact JSON (orjson: a third of the worker's serializing time; no NaN or infinity in state)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def owned_rows(table, books: dict):
    """(key, book, value) of a table's entries that belong to a partition in `books` (values carry it)."""
    for key, p, value in rows(table, books):
        yield key, books[p], value


def rows(table, owned):
    """(key, partition, value) of a table's entries of the partitions in `owned`. A memory store holds
    rows as the JSON bytes of their changelog records under (partition, key) (see PartitionTable):
    only owned ones are decoded."""
    # A memory store's rows are copied first (a C-speed copy): the rebuild suspends between rows, and
    # standby changelog records may be written into the same store meanwhile.
    rows = list(table.data.data.items()) if isinstance(table, PartitionTable) and table.keeps_bytes() else table.items()
    for key, row in rows:
        if isinstance(row, bytes):
            key = key[1]
            if row_partition(row) not in owned:
                continue
            row = orjson.loads(row)
        p, value = row
        if p in owned and value is not None:
            yield key, p, value


def row_partition(raw: bytes) -> int:
    """The partition of a row's JSON bytes, `[p,value]`, without decoding the value."""
    return int(raw[1:raw.index(b",")])
