"""The worker collector formats the worker's own figures; lag and assignment come from the worker's
offsets module as callables (processor/metrics/worker.py)."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from processor.metrics import WorkerCollector
from processor.worker.health import Health


def figures(**kw) -> SimpleNamespace:
    base = dict(health=Health(), stream_ms=1_700_000_000_000, watermark_ms=1_699_999_999_000, offset_gaps=0,
                offset_repeats=0, offsets_held=0, fetch_stalls=0, output=None)
    return SimpleNamespace(**{**base, **kw})


def test_the_worker_figures_read_through_the_registry():
    rt = figures(output=SimpleNamespace(in_flight=3), offset_gaps=2, offset_repeats=5, offsets_held=7, fetch_stalls=1)
    rt.health.processed(1_700_000_000_000, duplicate=False)
    rt.health.processed(1_699_000_000_000, duplicate=True)
    rt.health.dead_letter("not_json", "x")
    rt.health.dead_letter("not_json", "y")
    registry = CollectorRegistry()
    registry.register(WorkerCollector(rt, lag=lambda: [("contact-events", 0, 12), ("contact-facts", 3, 0)],
                                      assigned=lambda: {"contact-events": 2, "contact-facts": 1}))
    get = registry.get_sample_value
    assert get("kpi_events_processed_total") == 2 and get("kpi_events_duplicate_total") == 1
    assert get("kpi_events_dead_lettered_total", {"reason": "not_json"}) == 2
    assert get("kpi_stream_time_seconds") == 1_700_000_000 and get("kpi_watermark_seconds") == 1_699_999_999
    assert get("kpi_last_event_age_seconds") >= 0
    assert get("kpi_consumer_lag_messages", {"topic": "contact-events", "partition": "0"}) == 12
    assert get("kpi_consumer_lag_messages", {"topic": "contact-facts", "partition": "3"}) == 0
    assert get("kpi_assigned_partitions", {"topic": "contact-events"}) == 2
    assert get("kpi_output_batches_in_flight") == 3
    assert (get("kpi_input_offset_gaps_total"), get("kpi_input_offset_repeats_total"),
            get("kpi_input_offsets_held_total"), get("kpi_input_fetch_stalls_total")) == (2, 5, 7, 1)


def test_before_the_worker_starts_lag_assignment_and_backlog_have_no_samples():
    registry = CollectorRegistry()
    registry.register(WorkerCollector(figures()))
    families = {f.name: f for f in registry.collect()}
    for name in ("kpi_consumer_lag_messages", "kpi_assigned_partitions", "kpi_output_batches_in_flight",
                 "kpi_last_event_age_seconds"):
        assert families[name].samples == [], name
    assert registry.get_sample_value("kpi_events_processed_total") == 0
