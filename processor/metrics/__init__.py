"""/metrics: one collector per source, each reading its source at scrape time and formatting it.

  queues.py    QueueCollector    the queue books: live and windowed figures, stale contacts, waits, agents
  outcomes.py  OutcomeCollector  the queue books: provisional resolution, capacity, cost, foresight, staffing
  worker.py    WorkerCollector   the worker: events, dead letters, clocks, lag, output backlog, offsets
  redis.py     RedisCollector    the live snapshot's writes to Redis
The event-loop holds have their own collector next to their monitor (processor/loophold.py).
No collector imports the worker: each takes what it reads as arguments (worker/app.py wires them).
"""
from .outcomes import OutcomeCollector
from .queues import QueueCollector
from .redis import RedisCollector
from .worker import WorkerCollector

__all__ = ["OutcomeCollector", "QueueCollector", "RedisCollector", "WorkerCollector"]
