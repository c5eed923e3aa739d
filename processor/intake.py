"""Fetched records handed to the stages a fetch at a time, not through Faust's per-message streams.

faust-streaming delivers every record on its own: a ConsumerMessage, a round-robin generator step,
the conductor's callback, a stream event, a queue put and get, an ack with its refcount. In a
catch-up profile that machinery took about a quarter of the worker
(docs/benchmarks.md#4-december-2026-the-intakes-two-workers-soaks), more than the KPI arithmetic it
feeds. Here Faust still owns the group, the assignment, the seeks, the gaps and the commits; only
the hand-off changes: the fetch loop puts each partition's fetched records into the `Intake` of
its topic as one list, and the stage takes whatever has arrived (up to a limit) and acks the
offsets it handled in one call.

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
from time import monotonic

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


def patch_fetch_loop() -> None:
    """Make the aiokafka driver's fetch loop hand over in lists the records of the topics that have
    an intake (`app._kpi_intakes`, topic name -> Intake); an app without intakes runs Faust's loop."""
    from faust.transport.drivers.aiokafka import Consumer

    if getattr(Consumer, "_kpi_intake_patched", False):
        return
    faust_drain = Consumer._drain_messages

    async def _drain_messages(self, fetcher) -> None:
        if getattr(self.app, "_kpi_intakes", None) is None:
            return await faust_drain(self, fetcher)
        return await _drain_in_lists(self, fetcher)

    Consumer._drain_messages = _drain_messages
    Consumer._kpi_intake_patched = True


def manage(app, intakes: dict[str, Intake]) -> None:
    """Empty the intakes when partitions are revoked, as Faust empties its stream buffers then.

    Not on `flow_control.resume()` (where Faust clears its buffers again): recovery resumes the
    stream partitions and seeks them to the committed offsets *before* it resumes the flow, so
    records fetched right after that seek would be dropped there with their offsets marked read
    and fetched past, and the partition would stall (seen in the two-worker benchmark). What an
    intake still holds then was fetched in the current generation after the books were rebuilt;
    records fetched before the seek come again after it and are not applied twice (app._mend_gaps)."""

    async def on_revoked(sender, revoked, **kwargs) -> None:
        for each in intakes.values():
            each.clear()

    app.on_partitions_revoked.connect(on_revoked, weak=False)
    recovery = app.tables.recovery
    recovery._signal_recovery_end = RecoveryEnd(recovery)
    faust_started = recovery._set_recovery_started

    def recovery_started() -> None:
        faust_started()
        recovery.signal_recovery_end.clear()  # in recovery now: a set left from the last one goes

    recovery._set_recovery_started = recovery_started


class RecoveryEnd(asyncio.Event):
    """Faust's `Recovery.signal_recovery_end`, set by `changelog_records` (or Faust's loop) once the
    active partitions are caught up, and cleared again only while a recovery is in progress.

    Faust's changelog loop clears the signal at the top of each turn, a turn being a changelog
    event from its queue or a 5 s timeout. Records applied in lists no longer pass its queue, so
    a timeout could clear the signal between the set and the recovery task's wait, and the
    recovery would then wait for good (its loop sets the signal only while in recovery). A set
    signal outside recovery wakes nobody: the next recovery clears it when it starts (`manage`)."""

    def __init__(self, recovery) -> None:
        super().__init__()
        self._recovery = recovery

    def clear(self) -> None:
        if self._recovery.in_recovery:
            super().clear()


async def _drain_in_lists(self, fetcher) -> None:  # pragma: no cover - runs inside a live worker
    """Faust's `Consumer._drain_messages` + `getmany`, with a partition's records handed over as one list."""
    from faust.transport.consumer import CONSUMER_FETCHING

    intakes: dict[str, Intake] = self.app._kpi_intakes
    callback = self.callback
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    read_offset = self._read_offset
    acks_enabled_for = self.app.topics.acks_enabled_for
    app = self.app
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            records, active = await self._wait_next_records(1.0)
            await self.sleep(0)
            if records is None or self.should_stop:
                continue
            generation = app.consumer_generation_id
            if not self.flow_active:
                try:
                    await self.perform_seek()  # as Faust's getmany: back to the committed offsets
                except Exception as exc:  # noqa: BLE001 - logged as Faust does
                    self.log.warning(f"exception performing seek when flow not active {exc}")
                continue
            for tp, recs in records.items():
                if not self.flow_active or app.consumer_generation_id != generation:
                    break  # a rebalance: Faust seeks every assigned partition back to its committed offset
                if active is not None and tp not in active and tp not in self._buffered_partitions:
                    continue
                app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                last = read_offset[tp]
                if last is not None and recs and recs[0].offset < last:
                    recs = [r for r in recs if r.offset >= last]
                if not recs:
                    continue
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
                intake = intakes.get(tp.topic)
                if intake is None and changelog_records(self, tp, recs):  # a table's, in recovery or standby
                    read_offset[tp] = recs[-1].offset
                    continue
                if intake is None:  # Faust's per-message path (what changelog_records leaves to it)
                    for r in recs:
                        prev = read_offset[tp]
                        if prev and r.offset - prev > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, prev + 1, r.offset)
                        await self.wait_first(callback(self._to_message(tp, r)), self.suspend_flow.wait())
                        read_offset[tp] = r.offset
                    continue
                if acks_enabled_for(tp.topic) and (last and recs[0].offset - last > 1
                                                   or recs[-1].offset - recs[0].offset != len(recs) - 1):
                    prev = last
                    for r in recs:
                        if prev and r.offset - prev > 1:
                            await self._add_gap(tp, prev + 1, r.offset)
                        prev = r.offset
                if intake.full():
                    await self.wait_first(intake.wait_for_room(), self.suspend_flow.wait())
                    if not self.flow_active or app.consumer_generation_id != generation:
                        break
                intake.put_nowait(generation, recs)
                read_offset[tp] = recs[-1].offset
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


def changelog_records(consumer, tp, records: list) -> bool:
    """A table's changelog records (recovery of an active partition, or a standby replica) into its
    store as one list, with the bookkeeping Faust's `Recovery._slurp_changelogs` does one record at
    a time (offsets, the end of recovery, standbys ready). False: left to Faust's per-message path
    (a table without `apply_changelog_records`, a store that does not keep bytes, a partition the
    recovery does not track). Standby replicas read every record the other workers write: through
    the per-message path that was about 30 % of a worker with two workers (docs/benchmarks.md#4-december-2026-the-intakes-two-workers-soaks)."""
    app = consumer.app
    if app.topics.acks_enabled_for(tp.topic):
        return False
    recovery = app.tables.recovery
    table = recovery.tp_to_table.get(tp)
    if table is None or not hasattr(table, "apply_changelog_records") or not table.keeps_bytes():
        return False
    if tp in recovery.active_tps:
        offsets, active = recovery.active_offsets, True
    elif tp in recovery.standby_tps:
        offsets, active = recovery.standby_offsets, False
    else:
        return False
    seen = offsets.get(tp)
    if seen is not None and records[0].offset <= seen:
        records = [r for r in records if r.offset > seen]
    if records:
        table.apply_changelog_records(records)
        offsets[tp] = records[-1].offset
        now = monotonic()
        recovery._last_flush_at = now
        if active:
            recovery._active_events_received_at[tp] = now
            recovery._last_active_event_processed_at = now
        else:
            recovery._standby_events_received_at.setdefault(tp, now)
    if recovery.in_recovery:
        recovery.signal_recovery_end.clear()  # as each turn of Faust's loop, then set once caught up
        if not recovery.need_recovery():
            recovery.flush_buffers()  # what the per-message path may still hold for other tables
            recovery._set_recovery_ended()
            recovery.signal_recovery_end.set()
    if not (recovery._standbys_span is None and app.tables.standbys_ready) and not recovery.standby_remaining_total():
        if recovery._standbys_span is not None:
            from faust.utils.tracing import finish_span

            finish_span(recovery._standbys_span)
            recovery._standbys_span = None
        app.tables.on_standbys_ready()
    return True


def ack(consumer, records: list) -> int:
    """Mark the offsets of handled records committable, as Faust's `Consumer.ack` does one by one.

    Also notes that the partitions' stream is moving (Faust's monitor `stream_inbound_time`, set per
    stream event on Faust's path): without it Faust's event-path check, five minutes after the start,
    logs "Stream has not started processing" at ERROR for every partition with a lag, every minute."""
    from aiokafka.structs import TopicPartition as TP  # the driver's keys: aiokafka checks their type at commit
    from faust.transport.consumer import notify
    from faust.types.tuples import ack_lock

    monitor = getattr(consumer.app, "monitor", None)
    inbound = monitor.stream_inbound_time if monitor is not None else {}
    now = monotonic()
    n = 0
    with ack_lock:
        tp = None
        for r in records:
            if tp is None or r.partition != tp.partition or r.topic != tp.topic:
                tp = TP(r.topic, r.partition)
                inbound[tp] = now
                committed = consumer._committed_offset[tp]
                acked_index = consumer._acked_index[tp]
                acked = consumer._acked[tp]
            offset = r.offset
            if (committed is None or offset >= committed) and offset not in acked_index:
                acked_index.add(offset)
                acked.append(offset)
                n += 1
        consumer._n_acked += n
        notify(consumer._waiting_for_ack)
    return n
