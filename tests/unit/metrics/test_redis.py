"""The Redis collector reads the live snapshot's write counts (processor/metrics/redis.py)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry

from processor.metrics import RedisCollector
from tests.unit.test_snapshot import FakeRedis, _writer


def test_prometheus_health_of_the_snapshot():
    snapshot = None
    registry = CollectorRegistry()
    registry.register(RedisCollector(lambda: snapshot))
    families = {f.name: f for f in registry.collect()}
    assert families["kpi_redis_up"].type == "gauge" and families["kpi_redis_up"].samples == []  # no Redis: no sample
    snapshot = snap = _writer(FakeRedis())
    snap.up, snap.writes, snap.errors = True, 7, 2
    assert registry.get_sample_value("kpi_redis_up") == 1.0
    assert registry.get_sample_value("kpi_redis_snapshot_writes_total") == 7.0
    assert registry.get_sample_value("kpi_redis_snapshot_errors_total") == 2.0
