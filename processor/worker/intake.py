"""Fetched records handed to the stages a fetch at a time, not through Faust's per-message streams.

faust-streaming delivers every record on its own: a ConsumerMessage, a round-robin generator step,
the conductor's callback, a stream event, a queue put and get, an ack with its refcount. In a
catch-up profile that machinery took about a quarter of the worker
(docs/benchmarks.md#4-december-2026-the-intakes-two-workers-soaks), more than the KPI arithmetic it
feeds. Here Faust still owns the group, the assignment, the seeks, the gaps and the commits; only
the hand-off changes: the fetch loop puts each partition's fetched records into the `Intake` of
its topic as one list, and the stage takes whatever has arrived (up to a limit) and acks the
offsets it handled in one call. The fetch loop that fills the intakes, the changelog lists and the
ack replace Faust's private code: they are in worker/patches.py (`drain_in_lists`,
`changelog_records`, `ack`) with every other such change.

Semantics kept from Faust's path (faust/transport/consumer.py `_drain_messages`, `getmany`,
`ack`; faust/streams.py): records older than the last one read are dropped; a jump in offsets
(transaction markers, compaction) is recorded as a gap, so commits pass it; a fetch stops being
handed out when the flow is suspended or the generation changes (a rebalance); intakes are
emptied when partitions are revoked, and a list from an older generation is never handed to a
stage; waiting for room is raced against the suspension of the flow. A table changelog's records
(recovery and standby replicas) go into the table's store as one list too (`changelog_records`);
anything else goes through Faust's per-message path as before.
"""
from __future__ import annotations

import asyncio
from collections import deque

from . import patches

INTAKE_MAX = 20_000  # records waiting in one intake before the fetch loop waits for room


class Intake:
    """The fetched, not yet handled records of one topic (all its owned partitions, in fetch order)."""

    def __init__(self, maxsize: int = INTAKE_MAX) -> None:
        self.maxsize = maxsize
        self._lists: deque = deque()  # (generation, [records of one partition, in offset order])
        self._count = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.maxsize

    def put_nowait(self, generation: int, records: list) -> None:
        self._lists.append((generation, records))
        self._count += len(records)
        self._ready.set()
        if self._count >= self.maxsize:
            self._room.clear()

    async def wait_for_room(self) -> None:
        while self._count >= self.maxsize:
            await self._room.wait()

    def clear(self) -> None:
        """Drop everything (partitions revoked: see `manage`)."""
        self._lists.clear()
        self._count = 0
        self._ready.clear()
        self._room.set()

    async def take(self, generation_now, limit: int) -> list:
        """The records that have arrived (at least one list, whole lists up to about `limit` records),
        waiting for the first; lists fetched in an older generation than `generation_now()` are dropped."""
        while True:
            while not self._lists:
                self._ready.clear()
                await self._ready.wait()
            taken: list = []
            current = generation_now()
            while self._lists and len(taken) < limit:
                generation, records = self._lists.popleft()
                self._count -= len(records)
                if generation == current:
                    taken += records
            if not self._lists:
                self._ready.clear()
            if self._count < self.maxsize:
                self._room.set()
            if taken:
                return taken


def manage(app, intakes: dict[str, Intake]) -> None:
    """Empty the intakes when partitions are revoked, as Faust empties its stream buffers then.

    Not on `flow_control.resume()` (where Faust clears its buffers again): recovery resumes the
    stream partitions and seeks them to the committed offsets *before* it resumes the flow, so
    records fetched right after that seek would be dropped there with their offsets marked read
    and fetched past, and the partition would stall (seen in the two-worker benchmark). What an
    intake still holds then was fetched in the current generation after the books were rebuilt;
    records fetched before the seek come again after it and are not applied twice (offsets.mend_gaps)."""

    async def on_revoked(sender, revoked, **kwargs) -> None:
        for each in intakes.values():
            each.clear()

    app.on_partitions_revoked.connect(on_revoked, weak=False)
    patches.recovery_end_signal(app.tables.recovery)  # a recovery-end signal only a recovery clears
