"""Offsets: what the worker reads is what Kafka holds, without gaps, stalls or repeats; and the lag.

Gap mending (`mend_gaps`, `GapReader`): a batch whose offsets do not follow the last applied ones
is completed by reading the missing range again. The stall watch (`StallWatch`,
`resume_stalled_fetches`): a partition whose fetched records Faust dropped is sought back. The lag
(`consumer_lag`): how far each owned partition is behind its end, for /metrics.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..config import Settings
from ..topics import aiokafka_security
from .. import offset_guard
from . import patches

if TYPE_CHECKING:
    from .runtime import Worker

log = logging.getLogger("processor")
TICK_SECONDS = 1.0  # how often the stall watch looks (as the clock's tick)


async def mend_gaps(w: Worker, batch: list) -> list:
    """The batch, with what the consumer skipped read again: offsets must follow each other.

    faust-streaming 0.15 can drop a message fetched while recovery seeks to the committed
    offsets (the stream partitions are resumed before the flow, and a delivery that loses the
    race to `suspend_flow` is dropped with its offset marked read). Seen here after a restart
    under a backlog. A gap is logged, counted (kpi_input_offset_gaps_total) and mended by
    reading the missing offsets directly (a plain consumer, no group) into the batch; anything
    read twice is deduplicated downstream (event ids, fact ids). With exactly_once, offsets
    also hold transaction markers and aborted messages: a range with nothing committed in it
    is not a gap. Which offsets are applied, and why that is safe on every path: RepeatGuard.
    """
    rt, gap_reader = w.rt, w.gap_reader

    async def pass_empty(topic: str, partition: int, start: int, end: int, found: list) -> None:
        await patches.pass_empty_offsets(w.app.consumer, topic, partition, start, end, found)

    return await offset_guard.mend(batch, rt.guard, gap_reader.read_range, pass_empty, rt)


class GapReader:
    """A plain consumer (no group) that reads given offset ranges again: see mend_gaps.

    Started on first use and kept: with exactly_once every commit leaves a transaction marker in
    the partitions it wrote, so most batches start after a "gap" that holds nothing to read.
    """

    def __init__(self, settings: Settings, *, read_committed: bool) -> None:
        self.settings, self.read_committed = settings, read_committed
        self._consumer = None
        self._lock = asyncio.Lock()  # one consumer, three stages: one range at a time

    async def read(self, topic: str, partition: int, start: int, end: int) -> list:
        """The records of offsets [start, end) (committed ones only with exactly_once)."""
        return (await self.read_range(topic, partition, start, end))[0]

    async def read_range(self, topic: str, partition: int, start: int, end: int) -> tuple[list, bool]:
        """The records of offsets [start, end), and whether the reader got to `end` (within 30 s)."""
        from aiokafka.structs import TopicPartition

        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            found = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and await consumer.position(tp) < end:
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if start <= r.offset < end:
                        found.append(r)
            return found, await consumer.position(tp) >= end

    async def _started(self):
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.settings.kafka.bootstrap, group_id=None, enable_auto_commit=False,
                isolation_level="read_committed" if self.read_committed else "read_uncommitted",
                **aiokafka_security(self.settings))
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


def nothing_to_read(w: Worker, src: int) -> bool:
    """True unless input partition `src` has messages the agent has not read: a partition whose
    messages are held up (a stalled fetch, see StallWatch) must keep holding the watermark back,
    or its events arrive after their intervals were closed. One offset of slack: a transaction
    marker after the last message (a transactional producer upstream) is not a message."""
    from faust.types import TP

    app, rt, k = w.app, w.rt, w.k
    tp = TP(k.input_topic, src)
    try:
        end = app.consumer.highwater(tp)
    except Exception:  # not assigned (any more), not started
        return True
    handled = rt.health.offsets.get((k.input_topic, src))
    if handled is None:
        position = fetch_position(app.consumer, tp)
        handled = position - 1 if position is not None else None
    if end is None or end < 0 or handled is None:
        return True
    return end - 1 - handled <= 1


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
    are not applied twice (mend_gaps). With exactly_once the position rightly stays past
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


def install_stall_watch(w: Worker) -> None:
    stall_watch = StallWatch()

    async def resume_stalled_fetches():
        await resume_stalled(w, stall_watch)

    w.app.timer(TICK_SECONDS, name="processor.app.create_app.<locals>.resume_stalled_fetches")(resume_stalled_fetches)


async def resume_stalled(w: Worker, stall_watch: StallWatch) -> None:
    """Seek back a partition whose fetched records Faust dropped (StallWatch)."""
    app, rt, k, intakes, gap_reader, out = w.app, w.rt, w.k, w.intakes, w.gap_reader, w.out
    consumer = app.consumer
    if app.rebalancing or not consumer.flow_active:
        return
    owned = {tp for tp in app.assignor.assigned_actives()
             if tp.topic in (k.input_topic, k.facts_topic, k.journeys_topic)}
    stall_watch.forget(owned)
    if any(each.full() for each in intakes.values()):
        # The fetch loop waits for room in a full intake, and holds what it fetched for every
        # partition behind it (of any topic) until then: that is not a dropped fetch. Seeking
        # then only read those records twice (seen in a steady-state soak: the facts partitions
        # sought back while the input topic's intake was full, an ERROR line each).
        return
    for tp in sorted(owned):
        delivered = consumer._read_offset.get(tp)
        position = fetch_position(consumer, tp)
        offset = stall_watch.check(tp, position, delivered, rt.health.offsets.get((tp.topic, tp.partition)))
        if offset is not None:
            if out.exactly_once and not await gap_reader.read(tp.topic, tp.partition, offset, position):
                continue  # only transaction markers (or aborted records) in between: nothing was dropped
            rt.fetch_stalls += 1
            log.error("%s[%d]: fetched up to %s but delivered only up to %s: seeking back to %d",
                      tp.topic, tp.partition, position, delivered, offset)
            await consumer.seek(tp, offset)


def fetch_position(consumer, tp) -> int | None:
    """The next offset the worker's aiokafka consumer fetches for `tp` (None: not known yet).

    Read from aiokafka's subscription state: Faust offers no synchronous accessor."""
    try:
        state = consumer._thread._ensure_consumer()._subscription.subscription.assignment.state_value(tp)
    except Exception:  # not started, not assigned (any more), or rebalancing
        return None
    return state.position if state is not None and state.has_valid_position else None


async def seek_back(consumer, tp, offset: int) -> None:
    """Seek one partition of the worker's consumer (StallWatch) in the consumer's own thread, through
    Faust's `seek_wait`. Faust's `Consumer.seek` calls aiokafka's `seek` from the event loop's thread
    while the fetcher runs in the consumer's: the race of fault I (see `rewind_uncommitted`)."""
    await consumer.seek_wait({tp: offset})


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


def owned_partitions(app) -> set:
    """The topic-partitions this worker owns now (active assignment); none before the worker starts."""
    try:
        return set(app.assignor.assigned_actives()) if app is not None else set()
    except Exception:  # not started yet
        return set()


def assigned_counts(app) -> dict[str, int]:
    """Topic -> number of its partitions this worker owns now."""
    counts: dict[str, int] = {}
    for tp in owned_partitions(app):
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
    return counts


def consumer_lag(app, handled: dict, streams: set) -> list[tuple[str, int, int]]:
    """(topic, partition, messages behind the end) of each owned partition: those read from
    (`handled`: (topic, partition) -> last offset handled) by their last offset handled, then the
    owned partitions of `streams` not read yet by their consumer position."""
    found: list[tuple[str, int, int]] = []
    consumer = getattr(app, "consumer", None) if app is not None else None
    if consumer is None:
        return found
    from faust.types import TP
    owned = owned_partitions(app)  # only what this worker owns now: after a rebalance the old owner must stop reporting
    for (topic, partition), offset in sorted(handled.items()):
        if TP(topic, partition) not in owned:
            continue
        try:
            hw = consumer.highwater(TP(topic, partition))
        except Exception:  # partition not assigned (any more) or consumer not started
            continue
        if hw is not None:
            behind = max(0, hw - offset - 1)
            if behind and app.in_transaction:
                behind = min(behind, behind_fetch_position(consumer, TP(topic, partition), hw))
            found.append((topic, partition, behind))
    # Owned but nothing read since it was assigned (a quiet partition handed over by another worker):
    # the consumer's position is the committed offset, so the lag is the end minus that position.
    for tp in sorted(owned):
        if tp.topic not in streams or (tp.topic, tp.partition) in handled:
            continue
        try:
            hw = consumer.highwater(tp)
        except Exception:
            continue
        if hw is not None and hw >= 0:
            found.append((tp.topic, tp.partition, behind_fetch_position(consumer, tp, hw)))
    return found


def behind_fetch_position(consumer, tp, end: int) -> int:
    """exactly_once: offsets between the last message read and the end may be transaction markers
    (one per commit, after the last message of every partition written in a transaction), which a
    read_committed consumer skips. Kafka's own `records-lag` is the end (the last stable offset)
    minus the fetch position, which steps over them: that, when it is smaller."""
    position = fetch_position(consumer, tp)
    return end if position is None else max(0, end - position)
