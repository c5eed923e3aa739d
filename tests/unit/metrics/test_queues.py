"""The queue collector reads the queue books at scrape time (processor/metrics/queues.py)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry

from processor.core.pipeline import Pipeline
from processor.metrics import QueueCollector
from tests.coretools import by_time, engine, tick
from tests.unit.core.test_stale import BEFORE, LOST, feed_all


def test_metrics_show_the_stale_counter_and_no_longer_the_stale_contact():
    """/metrics as a worker serves it (the queue collector over the books of its partitions)."""
    p = Pipeline(engine())
    feed_all(p, by_time(LOST) + BEFORE + [tick("12:00:30")])
    books = {0: p.queues}
    registry = CollectorRegistry()
    registry.register(QueueCollector(lambda: books.values()))
    qc = {"queue": "Q1", "channel": "voice"}
    assert registry.get_sample_value("contact_queue_waiting", qc) == 1.0
    families = {f.name: f for f in registry.collect()}
    assert families["contact_queue_stale_contacts"].type == "counter"
    assert families["contact_queue_stale_contacts"].samples == []  # no sample before any went stale
    feed_all(p, [tick("12:00:30.001")])
    assert registry.get_sample_value("contact_queue_waiting", qc) == 0.0
    assert registry.get_sample_value("contact_queue_longest_wait_seconds", qc) == 0.0
    assert registry.get_sample_value("contact_queue_stale_contacts_total", qc) == 1.0


def test_a_worker_that_owns_no_queue_exports_families_without_samples():
    books: dict = {}
    registry = CollectorRegistry()
    registry.register(QueueCollector(lambda: books.values()))
    families = list(registry.collect())
    assert {f.name for f in families} >= {"contact_queue_waiting", "contact_queue_wait_seconds", "contact_agents"}
    assert all(f.samples == [] for f in families)
