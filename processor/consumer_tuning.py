"""Changes to faust-streaming 0.15's consumer: two that the worker's throughput and latency need,
and one that its table recovery needs with exactly_once (`broker_highwaters`).

The first two are measured by scripts/bench.py (docs/benchmarks.md#23-november-2026-records-out-in-batches):
- the fetch wait: Faust fixes aiokafka's fetch_max_wait_ms at 1.5 s (see `short_fetch_wait`);
- the hand-off of each fetched message: Faust races it against three events with four new tasks
  and asyncio.wait, per message (see `quick_hand_off`). The stages' own topics and the tables'
  changelogs no longer take that path (processor/intake.py hands them lists); only records it
  leaves to Faust do (a changelog of a RocksDB-backed table).
"""
from __future__ import annotations

import asyncio

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
    worker then sought its input partitions to offset 0 (consumer_tuning.track_seeks, as for a
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
            coros = (_finish(hand_off, waiting_on), suspended)
        return await race(*coros, timeout=timeout)

    consumer.wait_first = wait_first
    consumer._kpi_quick_hand_off = True


async def _finish(coro, waiting_on):
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


class StallWatch:
    """Finds partitions whose fetched records faust-streaming dropped without seeking back.

    Faust's fetch loop stops handing out a fetched batch when the consumer generation changes or
    the flow is suspended (a rebalance), and skips records of a partition it does not count as
    active; aiokafka's fetch position is past those records by then, and nothing seeks back.
    After a takeover under a backlog (seen here in the two-worker failover test) a partition
    then sat with hundreds of unread messages: no later message arrived to reveal the gap. A
    partition is stalled when, over `checks` consecutive checks, the fetch position stays ahead
    of the last offset Faust delivered while neither that nor the last offset the agent handled
    moves: the caller seeks it to the offset after the last delivered one. Offsets read twice
    are not applied twice (app._mend_gaps). With exactly_once the position rightly stays past
    the transaction markers after the last message: the caller reads the range again with a
    read_committed consumer and seeks only when it holds messages. Each stalled state is
    checked once.
    """

    def __init__(self, checks: int = 3) -> None:
        self.checks = checks
        self._seen: dict = {}     # tp -> ((position, delivered, handled), consecutive checks)
        self._sought: set = set()  # (tp, state) already sought

    def check(self, tp, position: int | None, delivered: int | None, handled: int | None) -> int | None:
        """The offset to seek `tp` to, or None. `position`: the consumer's next fetch offset;
        `delivered`: the last offset Faust handed to the stream; `handled`: the last one the agent read."""
        if position is None or delivered is None or position <= delivered + 1:
            self._seen.pop(tp, None)
            return None
        state = (position, delivered, handled)
        prev = self._seen.get(tp)
        count = prev[1] + 1 if prev is not None and prev[0] == state else 1
        self._seen[tp] = (state, count)
        if count < self.checks or (tp, state) in self._sought:
            return None
        self._sought.add((tp, state))
        return delivered + 1

    def forget(self, keep) -> None:
        """Drop what is known of partitions not in `keep` (after a rebalance)."""
        self._seen = {tp: v for tp, v in self._seen.items() if tp in keep}
        self._sought = {(tp, s) for tp, s in self._sought if tp in keep}


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


async def seek_back(consumer, tp, offset: int) -> None:
    """Seek one partition of the worker's consumer (StallWatch) in the consumer's own thread, through
    Faust's `seek_wait`. Faust's `Consumer.seek` calls aiokafka's `seek` from the event loop's thread
    while the fetcher runs in the consumer's: the race of fault I (see `rewind_uncommitted`)."""
    await consumer.seek_wait({tp: offset})


def fetch_position(consumer, tp) -> int | None:
    """The next offset the worker's aiokafka consumer fetches for `tp` (None: not known yet).

    Read from aiokafka's subscription state: Faust offers no synchronous accessor."""
    try:
        state = consumer._thread._ensure_consumer()._subscription.subscription.assignment.state_value(tp)
    except Exception:  # not started, not assigned (any more), or rebalancing
        return None
    return state.position if state is not None and state.has_valid_position else None


async def seek_again(seek_wait, committed: dict) -> None:
    """Seek each partition to its committed offset, or to offset 0 when none (or 0) is committed
    (`committed`: (topic, partition) -> offset or None; `seek_wait` as in `rewind_uncommitted`)."""
    from aiokafka.structs import TopicPartition

    if committed:
        await seek_wait({TopicPartition(topic, partition): offset if offset is not None and offset > 0 else 0
                         for (topic, partition), offset in committed.items()})


async def rewind_uncommitted(seek_wait, committed: dict) -> list:
    """Seek each partition with no committed offset (or 0) to offset 0; returns those partitions.
    `committed`: (topic, partition) -> committed offset or None; `seek_wait`: seeks {aiokafka
    TopicPartition: offset} (the worker's: Faust's `Consumer.seek_wait`, which seeks in the
    consumer's own thread). A seek from the event loop's thread (Faust's `Consumer.seek`) raced the
    consumer thread's fetch: aiokafka's `Fetcher.fetched_records` raised KeyError for the partition
    and the worker crashed right after a recovery (chaos drill seed 24100, at_least_once, issue 24)."""
    from aiokafka.structs import TopicPartition

    rewound = [TopicPartition(topic, partition) for (topic, partition), offset in committed.items()
               if offset is None or offset <= 0]
    if rewound:
        await seek_wait({tp: 0 for tp in rewound})
    return rewound
