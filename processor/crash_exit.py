"""A crashed worker ends its process, even when Faust's stop hangs, so that a supervisor restarts it.

After a crash Faust stops the worker's services one by one. With exactly_once, a worker whose
transactional producer was fenced crashed and then hung in "Stopping..." after "LeaveGroup request
succeeded" for minutes, until the chaos drill's SIGTERM (seeds 12005 and 12007, docs/reliability.md):
alive, owning nothing, restarted by nobody. Which stop step waits for good is not known; whatever
it is, a process that crashed exits within CRASH_EXIT_SECONDS of the crash, with EXIT_CODE.
The watch is a thread: it must work while the event loop waits (or is blocked) in the stop.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time

CRASH_EXIT_SECONDS = 30.0  # longer than an orderly stop takes (a few seconds), short for a supervisor
EXIT_CODE = 70  # EX_SOFTWARE: an internal error, restart me
POLL_SECONDS = 0.5

log = logging.getLogger("processor")


def exit_after_crash(app, seconds: float = CRASH_EXIT_SECONDS, exit=os._exit,
                     poll: float = POLL_SECONDS) -> threading.Thread:
    """Watch `app` (a mode Service: `crashed`) from a daemon thread; `seconds` after it crashed,
    if the process still runs, log and call `exit(EXIT_CODE)` (os._exit: no cleanup left to hang)."""

    def watch() -> None:
        while not app.crashed:
            time.sleep(poll)
        time.sleep(seconds)
        log.error("the worker crashed (%r) %.0f s ago and has not stopped: exiting with %d",
                  getattr(app, "crash_reason", None), seconds, EXIT_CODE)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        exit(EXIT_CODE)

    thread = threading.Thread(target=watch, name="crash-exit", daemon=True)
    thread.start()
    return thread
