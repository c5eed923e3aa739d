"""Every change the worker makes to faust-streaming's and aiokafka's private attributes, in one place.

Pinned versions (pyproject.toml): faust-streaming >=0.15.3,<0.16 and aiokafka >=0.13,<0.15 (tested
with faust-streaming 0.15.3 and aiokafka 0.14.0). Each of these reaches into code those projects may
change in any release: read this module again before moving a pin.

Replaced attributes (installed once; a `_kpi_*` flag marks what is done):
  1. `AIOKafkaConsumerThread._create_worker_consumer`, and the consumer's `_fetch_max_wait_ms`:
     a fetch waits at most 50 ms for data (`short_fetch_wait`).
  2. `AIOKafkaConsumerThread._highwaters`: table recovery asks the broker for the changelogs' end
     offsets, also with exactly_once (`broker_highwaters`).
  3. aiokafka's `GroupCoordinator._send_req`: an OffsetFetch response with a top-level error raises
     it (retried), instead of reading as "nothing committed" (`offset_fetch_errors`).
  4. `Consumer._drain_messages` (the aiokafka driver's fetch loop): fetched records go to the
     intakes a partition's list at a time (`install_intake`, `drain_in_lists`); the app's
     `_kpi_intakes` names them.
  5. `Recovery._signal_recovery_end` and `Recovery._set_recovery_started`: a recovery-end signal
     that only a recovery clears (`recovery_end_signal`, `RecoveryEnd`).
  6. the worker consumer's `wait_first`: a fetched message handed over without four tasks when
     nothing waits (`quick_hand_off`).
  7. the worker consumer's `perform_seek`: the stages learn where each partition was sought, then
     every partition is sought again (to offset 0 when nothing is committed) (`track_seeks`).
  8. the assignor's `group_for_topic`: transactional ids stable across rebalances
     (`stable_transaction_groups`).
  9. the producer's `flush` (at_least_once): fails when a record was not delivered (`check_flush`).
 10. the transaction manager's `commit` and the consumer's `commit_and_end_transactions`
     (exactly_once): commits wait for the batch in progress and carry its writes (`guard_commits`).
 11. the producer's `begin_transaction`, `commit_transaction`, `abort_transaction` (exactly_once):
     a fenced producer stops the worker (`guard_fences`).
Private state written by hand (what Faust does one record at a time, done for a list):
 12. `Consumer._acked`, `_acked_index`, `_n_acked`: offsets marked committable (`ack`); read with
     `_committed_offset` and `_filter_committable_offsets`, which `add_acked_meanwhile` sets
     for the time of one call.
 13. `Recovery.active_offsets`/`standby_offsets`, `_last_flush_at`, `_active_events_received_at`,
     `_last_active_event_processed_at`, `_standby_events_received_at`, `_standbys_span`, and
     `_set_recovery_ended()`: a changelog list applied (`changelog_records`).
 14. `Consumer._add_gap`: offsets read again without a record are a gap Faust's commits pass
     (`pass_empty_offsets`); `drain_in_lists` records gaps and moves `_read_offset` as Faust's loop does.
Elsewhere, by subclassing or reading only: `PartitionTable` (worker/tables.py) overrides
`_new_store_by_url` and keeps rows in the memory store's `data`/`_key_partition`, and its RocksDB
store overrides `_set`, `_get`, `_contains`; `Output._producer` reads the producer's
`_transaction_producers` and `_ensure_producer()`; `offsets.fetch_position` reads aiokafka's
subscription state.
"""
from __future__ import annotations

import asyncio
import logging
from time import monotonic


log = logging.getLogger("processor")

FETCH_MAX_WAIT_MS = 50  # longest a fetch waits for data


def short_fetch_wait() -> None:
    """Make the worker's consumer wait at most FETCH_MAX_WAIT_MS for data.

    aiokafka sends one fetch per broker at a time, leaving out the partitions it still holds
    records of; a fetch for quiet partitions (a journeys partition between two ticks) is held by
    the broker for the whole wait while the busy input and facts partitions queue up behind it.
    With 1.5 s the live gauges moved in 1.5 s steps and fell behind at 1,000 events/s."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_kpi_short_fetch_wait", False):
        return
    create = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    AIOKafkaConsumerThread._kpi_short_fetch_wait = True


def broker_highwaters() -> None:
    """Make table recovery ask the broker for the changelogs' end offsets, also with exactly_once.

    faust-streaming 0.15 builds the highwaters a recovery reads up to from aiokafka's
    `last_stable_offset(tp)` when the consumer is transactional: a value cached from the last fetch
    response of that partition, None for a partition this consumer never fetched (a worker just
    started, a partition just assigned) and stale for one it stopped fetching (an active changelog
    is paused after its recovery). Seen in the chaos drill (issue 24): a worker on an empty folder
    took partitions with highwater -1 everywhere, rebuilt 0 contacts and dead-lettered the rest of
    their contacts as impossible_order; Faust's ConsistencyError ("persisted offset ... is higher")
    came from the stale values. aiokafka's `end_offsets` asks the broker with the consumer's
    isolation level: the last stable offset under read_committed, the highwater otherwise."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_kpi_broker_highwaters", False):
        return

    async def _highwaters(self, partitions):
        return await self._ensure_consumer().end_offsets(list(partitions))

    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._kpi_broker_highwaters = True


def offset_fetch_errors() -> None:
    """Make aiokafka retry an offset fetch whose response carries an error for the whole request.

    aiokafka 0.14 sends OffsetFetch v2+ and reads only the partitions' error codes. Since v2 the
    broker reports a coordinator still loading the group's offsets (COORDINATOR_LOAD_IN_PROGRESS),
    or no longer the coordinator, in the response's top-level error code, with no partitions at all:
    aiokafka returned "nothing committed" for every partition. Right after a broker restart a
    worker then sought its input partitions to offset 0 (track_seeks, as for a
    partition with nothing committed) and applied them again from there: chaos drill seed 27011
    (exactly_once), a dead letter of offset 395 committed again although offset 419 was committed.
    The same answer reached aiokafka's own position resets. Now such a response raises its error:
    a retriable one is retried by `fetch_committed_offsets` (after finding the coordinator again),
    as aiokafka does for the same errors reported per partition."""
    from aiokafka import errors
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.protocol.commit import OffsetFetchRequest

    if getattr(GroupCoordinator, "_kpi_offset_fetch_errors", False):
        return
    send = GroupCoordinator._send_req

    async def _send_req(self, request):
        response = await send(self, request)
        code = getattr(response, "error_code", 0) if isinstance(request, OffsetFetchRequest) else 0
        if code:
            error = errors.for_code(code)
            if error in (errors.NotCoordinatorForGroupError, errors.GroupCoordinatorNotAvailableError):
                self.coordinator_dead()
            raise error(self.group_id) if error is errors.GroupAuthorizationFailedError else error()
        return response

    GroupCoordinator._send_req = _send_req
    GroupCoordinator._kpi_offset_fetch_errors = True


def install_intake(app, intakes: dict) -> None:
    """Make the aiokafka driver's fetch loop hand over in lists the records of the topics that have
    an intake (`app._kpi_intakes`, topic name -> Intake); an app without intakes runs Faust's loop."""
    from faust.transport.drivers.aiokafka import Consumer

    app._kpi_intakes = intakes
    if getattr(Consumer, "_kpi_intake_patched", False):
        return
    faust_drain = Consumer._drain_messages

    async def _drain_messages(self, fetcher) -> None:
        if getattr(self.app, "_kpi_intakes", None) is None:
            return await faust_drain(self, fetcher)
        return await drain_in_lists(self, fetcher)

    Consumer._drain_messages = _drain_messages
    Consumer._kpi_intake_patched = True


def recovery_end_signal(recovery) -> None:
    """Faust's recovery-end signal replaced by a `RecoveryEnd`, cleared again when a recovery starts."""
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


async def drain_in_lists(self, fetcher) -> None:  # pragma: no cover - runs inside a live worker
    """Faust's `Consumer._drain_messages` + `getmany`, with a partition's records handed over as one list."""
    from faust.transport.consumer import CONSUMER_FETCHING

    intakes: dict = self.app._kpi_intakes  # topic name -> worker.intake.Intake
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


def quick_hand_off(consumer) -> None:
    """Hand a fetched message to its streams without four tasks per message when nothing waits.

    Faust's fetch loop does `await self.wait_first(callback(message), self.suspend_flow.wait())`:
    a rebalance that suspends the flow must not stay blocked behind a message waiting for room in
    a stream's buffer. That costs four tasks and an asyncio.wait per message (12 % of the worker
    in a catch-up profile). Here the callback runs first by hand: when it finishes without waiting
    (the common case: room in the buffer, flow active) the message is delivered exactly as the
    winning race would have delivered it; when it has to wait, or the flow is suspended, or the
    consumer is stopping, Faust's race runs as before, with the started callback finished by a
    task.
    """
    if getattr(consumer, "_kpi_quick_hand_off", False):
        return
    race = consumer.wait_first
    event_wait = asyncio.Event.wait.__code__

    async def wait_first(*coros, timeout=None):
        if (len(coros) == 2 and timeout is None and asyncio.iscoroutine(coros[0])
                and getattr(coros[1], "cr_code", None) is event_wait
                and getattr(coros[1], "cr_frame", None) is not None
                and coros[1].cr_frame.f_locals.get("self") is consumer.suspend_flow
                and not (consumer.suspend_flow.is_set() or consumer._stopped.is_set()
                         or consumer._crashed.is_set())):
            hand_off, suspended = coros
            try:
                waiting_on = hand_off.send(None)
            except StopIteration:
                suspended.close()  # never started
                return None  # the fetch loop ignores the result
            coros = (finish_started(hand_off, waiting_on), suspended)
        return await race(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._kpi_quick_hand_off = True


async def finish_started(coro, waiting_on):
    """Run a coroutine started by hand to its end, as its task would: it is waiting on
    `waiting_on` (a future, or None for a bare yield); a cancellation is passed on to it."""
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                waiting_on._asyncio_future_blocking = False  # as a task does with what its coroutine yields
                await waiting_on
        except BaseException as exc:  # noqa: BLE001 - the coroutine decides, as under a task
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            waiting_on = coro.send(None)
        except StopIteration as stop:
            return stop.value


def track_seeks(consumer, topics: set[str], on_sought) -> None:
    """After Faust seeks the stream partitions to their committed offsets (at the end of every
    recovery), every assigned partition of `topics` is at its committed offset, or at the start
    when none is committed; then `on_sought({(topic, partition): committed offset or None})`.

    aiokafka's `seek_to_committed` seeks only a partition whose committed offset is above 0: one
    with none (or 0) stays at its fetch position. Faust resumes the stream partitions before it
    seeks, so records can be fetched and handed over in between; the stages drop them, since the
    books were rebuilt and they come again after the seek (processor/offset_guard.py). For a
    partition with nothing committed they did not come again: its fetch position stayed after
    them. A worker restarted on an empty folder after a worker killed before its first commit
    lost them for good (issue 24: test_crash_recovery, exactly_once, 3 of 5 offered counted; or it
    never reached the end of the input). Such a partition now goes back to offset 0 (the log
    start, by auto_offset_reset, if that is gone). Which partitions is read from what Faust's
    seek just set, before anything else runs: the fetch loop moves those marks as it hands over.

    The same holds for a partition with a committed offset: Faust's seek ends in the consumer's
    thread, and the event loop runs the fetch loop and the stages before Faust's `perform_seek`
    (and this) go on; records fetched from the committed offset then were handed over and dropped
    as "held" (the guard still waited for this seek), with the fetch position after them. With
    nothing later on the partition they never came again: chaos drill seed 27001 re-run on main
    6ba60ce, two input partitions never committed again after a worker's recovery, 82 records
    missing. So every partition is sought once more after `on_sought` (which sets the guard's
    marks and releases it): what comes again is applied, or skipped as a repeat."""
    if getattr(consumer, "_kpi_seek_tracked", False):
        return
    from .offsets import seek_again

    seek = consumer.perform_seek

    async def perform_seek() -> None:
        await seek()
        read = consumer._read_offset  # Faust's perform_seek set it: the committed offset, None when none
        committed = {(tp.topic, tp.partition): offset for tp, offset in list(read.items()) if tp.topic in topics}
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment() if tp.topic in topics}
        on_sought(committed)
        # through Faust's seek_wait, in the consumer's own thread (see rewind_uncommitted)
        await seek_again(consumer.seek_wait, {tp: committed.get(tp) for tp in assigned})

    consumer.perform_seek = perform_seek
    consumer._kpi_seek_tracked = True


async def pass_empty_offsets(consumer, topic: str, partition: int, start: int, end: int, found: list) -> None:
    """Offsets of [start, end) read again without a record (transaction markers, aborted records) are
    a gap Faust's commits pass, as its fetch loop records the jumps it sees. Without that, after the
    consumer had skipped a range holding markers (offsets.mend_gaps), the offsets acked had holes
    Faust never commits past: no offset of that partition was committed again (exactly_once: seen
    in the chaos drill, seed 12007, after "offsets ... were skipped by the consumer")."""
    from aiokafka.structs import TopicPartition

    tp, have, first = TopicPartition(topic, partition), {m.offset for m in found}, None
    for offset in range(start, end + 1):
        if offset < end and offset not in have:
            first = offset if first is None else first
        elif first is not None:
            await consumer._add_gap(tp, first, offset - 1)
            first = None


def stable_transaction_groups(assignor, leader_topic: str, partitions: int) -> None:
    """exactly_once: transactional ids that stay the same from one rebalance to the next.

    Faust names a partition's transactional id after the assignor's number for its topic group,
    `{app}-{group}-{partition}`, and numbers the groups by partition count in each rebalance:
    the assignor's own one-partition topic is group 0 and the co-partitioned topics group 1 -
    unless the leader's metadata lacks that topic (the first rebalance of a new app, a rebalance
    right after a broker restart), when they are group 0. Seen in the chaos drill: the ids
    changed between rebalances, so a new owner's producer no longer fenced the open
    transaction of a killed worker; that transaction held the last stable offset of its
    partitions until it timed out, and recovery with read_committed rebuilt books without the
    changelog behind it (impossible_order dead letters, wrong records, versions published
    twice). Here the numbers are Faust's steady ones, whatever the metadata says."""
    main = 1 if partitions > 1 else 0

    def group_for_topic(topic: str) -> int:
        return 0 if topic == leader_topic else main

    assignor.group_for_topic = group_for_topic


def check_flush(producer, failed) -> None:
    """at_least_once: Faust flushes the producer before it commits offsets; a record that was not
    delivered (`failed()`: the first one) makes that flush fail, so the offsets of the input that
    caused it stay uncommitted."""
    flush = producer.flush

    async def checked_flush() -> None:
        await flush()
        if failed() is not None:
            from faust.exceptions import ProducerSendError
            raise ProducerSendError(f"a record was not delivered: {failed()!r}")

    producer.flush = checked_flush


def guard_commits(out) -> None:
    """Make Faust's commits wait for the batch in progress and carry the table writes and ticks too
    (`out`: the worker's Output; its flush_all hands over the queued batches and waits for those
    another task is handing over, such as a housekeeping slice's, before the commit)."""
    consumer = out.app.consumer
    manager = consumer.transactions
    commit, end = manager.commit, consumer.commit_and_end_transactions

    async def guarded_commit(offsets, start_new_transaction: bool = True) -> bool:
        async with out.all_stages():
            out.add_acked_meanwhile(offsets)
            await out.flush_all()
            done = await commit(offsets, start_new_transaction=start_new_transaction)
            out.open -= {out.transactional_id(tp.partition) for tp in offsets}
            await out.commit_open(begin=start_new_transaction)
            return done

    async def commit_and_end() -> None:  # the worker stops: nothing sent is left uncommitted
        await end()
        async with out.all_stages():
            await out.flush_all()
            await out.commit_open(begin=False)

    manager.commit = guarded_commit
    consumer.commit_and_end_transactions = commit_and_end


def add_acked_meanwhile(consumer, offsets: dict) -> None:
    """The offsets acked while the guarded commit waited for the batch in progress, into `offsets`
    (fault H, docs/reliability.md).

    Faust computes `offsets` (and takes them off its acked lists), then its commit waits here for
    the batch in progress, whose outputs and table writes join the transaction: without its
    offsets, a restart or a rebalance applied that batch again, and what no id deduplicates (a
    dead letter of a message that is not an event) was committed twice. The dict is Faust's own
    and is updated in place: after the commit Faust records it as the committed offsets, and
    its next commit starts from there. (A copy committed higher offsets while Faust recorded the
    lower ones; its acked lists then began more than one offset above its committed offset, so it
    never committed that partition again: the drill stalled, cb94a7f.) Faust would take the
    later acks only from its committed offset, so it is set to `offsets` while they are taken."""
    assigned = consumer.assignment()
    tps = [tp for tp, acked in list(consumer._acked.items()) if acked and tp in assigned]
    if not tps:
        return
    committed = consumer._committed_offset
    before = {tp: committed[tp] for tp in offsets}
    committed.update(offsets)  # what Faust records once this commit is done
    try:
        later = consumer._filter_committable_offsets(tps)
    finally:
        committed.update(before)
    for tp, offset in later.items():
        if offset > (offsets.get(tp) or -1):
            offsets[tp] = offset


def guard_fences(app, fenced: set) -> None:
    """exactly_once: a fenced transactional producer stops the worker (issue 24's chaos drill).

    faust-streaming's begin/commit/abort_transaction catch ProducerFenced, log it at INFO, drop
    the producer and go on. The worker then kept books holding the effects of the transaction
    the broker aborted, and went on reading after them: a zombie beside the partition's new
    owner. A fence means another worker owns the partition now; as Kafka Streams does with a
    migrated task, the worker stops (Faust's crash) and starts again from what was committed.
    In a rebalance a fence is the normal hand-over of a partition that moves to another worker
    (the commit at its start begins new transactions): the worker stops only if that partition
    is assigned to it again (Faust begins its transaction then). `fenced`: the transactional ids
    fenced in the current rebalance (Output.fenced_in_rebalance)."""
    producer = app.producer
    if getattr(producer, "_kpi_fence_guarded", False):
        return
    from aiokafka.errors import ProducerFenced

    async def stop(transactional_id: str) -> None:
        log.error("transactional producer %s was fenced: stopping the worker", transactional_id)
        exc = ProducerFenced()
        await app.crash(exc)
        raise exc

    def checked(name: str, method):
        async def call(transactional_id: str) -> None:
            if transactional_id in fenced and name == "begin_transaction":
                await stop(transactional_id)  # assigned again after its producer was fenced
            had = transactional_id in producer._transaction_producers
            await method(transactional_id)
            if had and transactional_id not in producer._transaction_producers:  # Faust dropped it: fenced
                if app.rebalancing:
                    log.info("transactional producer %s fenced in a rebalance: its partition moved",
                             transactional_id)
                    fenced.add(transactional_id)
                else:
                    await stop(transactional_id)
        return call

    for name in ("begin_transaction", "commit_transaction", "abort_transaction"):
        setattr(producer, name, checked(name, getattr(producer, name)))
    producer._kpi_fence_guarded = True
