"""The clock: stream time repeated to every stage-two and journeys partition once a second.

Stage two's clock counts each journeys partition as a source besides the input partitions, so a
day is never closed before the contributions of the events before the watermark have arrived.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .offsets import nothing_to_read
from .stages import fact_message

if TYPE_CHECKING:
    from .runtime import Worker

TICK_SECONDS = 1.0
IDLE_SECONDS = 5.0


def install(w: Worker) -> None:
    async def tick():
        await run_tick(w)

    w.app.timer(TICK_SECONDS, name="processor.app.create_app.<locals>.tick")(tick)


async def run_tick(w: Worker) -> None:
    """Repeat each owned input partition's stream time to every stage-two partition.

    Quiet queues still close their intervals, and a partition with nothing to read is marked
    idle so that it no longer holds the watermark back. The stage locks make sure a stream time
    is never announced while the facts of the batch that reached it are still being sent.
    """
    rt, k, out, locks, holds = w.rt, w.k, w.out, w.locks, w.holds
    facts_topic, journeys_topic = w.topics.facts, w.topics.journeys
    now = time.monotonic()
    async with locks["one"]:
        t0, gc0 = time.perf_counter(), holds.gc_seconds
        for src, book in list(rt.contacts.items()):
            idle = now - rt.last_read.setdefault(src, now) >= IDLE_SECONDS and nothing_to_read(w, src)
            if book.stream_ms == 0 and not idle:
                continue  # just assigned and not read yet: say nothing rather than "time zero"
            value = fact_message(src, book.stream_ms, [], idle)
            for p in range(k.partitions):
                await out.send(facts_topic, src, partition=p, key=b"", value=value)
                await out.send(journeys_topic, src, partition=p, key=b"", value=value)
        holds.section("tick", t0, time.perf_counter(), gc0)  # (the flush below may wait for the producer)
        await out.flush_batches()
    async with locks["journeys"]:
        t0, gc0 = time.perf_counter(), holds.gc_seconds
        for part, book in list(rt.journeys.items()):
            if book.stream_ms == 0:
                continue  # no clock yet (not every input partition has reported to it)
            for p in range(k.partitions):
                await out.send(facts_topic, part, partition=p, key=b"", value=fact_message(k.partitions + part, book.stream_ms, []))
        holds.section("tick", t0, time.perf_counter(), gc0)
        await out.flush_batches()
    await out.commit_idle()  # exactly_once: ticks of partitions with nothing new to commit are committed too
