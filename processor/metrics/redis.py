"""Prometheus families of the live snapshot's writes to Redis (processor/snapshot.py)."""
from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class RedisCollector:
    """`snapshot()`: the worker's RedisSnapshot (its `up`, `writes`, `errors`), None when redis_url is
    not set: then the families have no samples."""

    def __init__(self, snapshot: Callable[[], object | None]) -> None:
        self.snapshot = snapshot

    def describe(self):
        return []

    def collect(self):
        snap = self.snapshot()
        up = GaugeMetricFamily("kpi_redis_up", "1 when the last live-snapshot write to Redis succeeded, else 0.")
        writes = CounterMetricFamily("kpi_redis_snapshot_writes", "Queue hashes written to the Redis live snapshot.")
        errors = CounterMetricFamily("kpi_redis_snapshot_errors", "Live-snapshot writes to Redis that failed.")
        if snap is not None:
            up.add_metric([], 1.0 if snap.up else 0.0)
            writes.add_metric([], snap.writes)
            errors.add_metric([], snap.errors)
        yield from (up, writes, errors)
