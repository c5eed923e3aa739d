"""The worker's housekeeping pass, cut into slices that each hold the event loop briefly.

A book's `expire(limit=n)` processes at most n items and returns how many; n back means "call
again". Each slice holds the stage's lock (a batch never sees a book half-expired within one call)
for about `budget` seconds of loop time, then releases it and suspends, so that the stage's
batches, the tick, /metrics and the live snapshot run between two slices. The books are looked up
again at every slice: a rebuild (on_recover) may have replaced them meanwhile, and a replaced book
simply starts its own pass.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from .loophold import SLICE_SECONDS, HoldMonitor

EXPIRE_LIMIT = 500  # items one expire() call processes at most


async def expire_stage(name: str, lock: asyncio.Lock, books_now: Callable[[], dict], holds: HoldMonitor, *,
                       limit: int | None = EXPIRE_LIMIT, budget: float = SLICE_SECONDS) -> int:
    """Expire every book of one stage, in slices; returns the number of slices (lock holds) it took.
    limit=None: each book's whole pass in one call (a book whose expire takes no limit)."""
    todo: list | None = None
    slices = 0
    while todo is None or todo:
        async with lock:
            t0, gc0 = time.perf_counter(), holds.gc_seconds
            books = books_now()
            if todo is None:
                todo = sorted(books)
            while todo:
                book = books.get(todo[0])
                if book is None or limit is None or book.expire(limit=limit) < limit:
                    if book is not None and limit is None:
                        book.expire()
                    todo.pop(0)  # gone with a rebalance, or its pass is over
                if time.perf_counter() - t0 >= budget:
                    break
            holds.section(f"housekeeping ({name})", t0, time.perf_counter(), gc0)
        slices += 1
        if todo:
            await asyncio.sleep(0)  # the lock is free: whatever waits for it or for the loop runs now
    return slices
