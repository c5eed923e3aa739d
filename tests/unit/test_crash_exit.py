"""A crashed worker ends its process even when its stop hangs (processor/crash_exit.py)."""
from __future__ import annotations

import asyncio
import time

from mode import Service

from processor.crash_exit import EXIT_CODE, exit_after_crash


class Worker(Service):
    """A mode service as the worker is one: a crash marks it crashed; its stop never ends here."""


def _exits_of(service, seconds: float, wait: float) -> list:
    exits: list = []
    exit_after_crash(service, seconds=seconds, exit=exits.append, poll=0.01)
    time.sleep(wait)
    return exits


def test_a_crashed_worker_whose_stop_hangs_exits():
    worker = Worker()

    async def crash() -> None:
        await worker.crash(RuntimeError("Can't send messages while not in transaction"))

    asyncio.run(crash())
    assert worker.crashed
    assert _exits_of(worker, seconds=0.05, wait=0.5) == [EXIT_CODE]


def test_a_worker_that_did_not_crash_is_left_alone():
    assert _exits_of(Worker(), seconds=0.05, wait=0.3) == []
