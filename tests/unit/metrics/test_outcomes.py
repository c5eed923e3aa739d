"""The outcome collector: provisional resolution, capacity, foresight and staffing gauges, read from the
queue books at scrape time (processor/metrics/outcomes.py)."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from processor.core.capacity import staffing_view
from processor.metrics import OutcomeCollector
from tests.coretools import Contact, agent_state, by_time, run, tick
from tests.unit.core import test_capacity, test_foresight
from tests.unit.core.test_resolution import journeys
from tests.unit.core.test_unidentified import contacts


def registry_of(book) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(OutcomeCollector(lambda: [book]))
    return registry


def test_gauges_of_the_new_figures():
    events = sorted(test_capacity.scenario() + by_time(*journeys()), key=lambda e: e.ts_ms)
    r = run(events + [tick("2026-11-30T20:00:00Z")], test_capacity.SETTINGS, flush=False)
    registry = registry_of(r.pipeline.queues)
    # the open window of Q1 voice: days 11-23 and 11-30 of core/test_resolution (12 contacts, 2 repeats,
    # 3 FCR) plus x1 and x2 here (same customer, no issue: x2 repeats x1; neither resolved):
    # 14 contacts, 3 repeats, 11 first contacts, FCR 3 / 11
    qc = {"queue": "Q1", "channel": "voice"}
    assert registry.get_sample_value("contact_resolution_provisional_contacts", qc) == 14
    assert registry.get_sample_value("contact_resolution_provisional_first_contacts", qc) == 11
    assert registry.get_sample_value("contact_fcr_provisional_ratio", qc) == pytest.approx(3 / 11)
    assert registry.get_sample_value("contact_repeat_provisional_ratio", qc) == pytest.approx(3 / 14)
    assert registry.get_sample_value("contact_capacity_staffed_agents", {"queue": "Q1"}) >= 3
    assert registry.get_sample_value("contact_capacity_slots", {"queue": "Q1"}) is not None


def test_gauges_read_the_views_at_the_stream_clock():
    settings = test_foresight.SETTINGS
    events = test_foresight.floor_scenario() + [agent_state("ag1", "available", "10:00:00"),
                                                agent_state("ag2", "busy", "10:00:00")]
    events.sort(key=lambda e: e.ts_ms)
    registry = registry_of(run(events, settings, flush=False).pipeline.queues)
    qc = {"queue": "Q1", "channel": "voice"}
    assert registry.get_sample_value("contact_queue_at_risk", qc) == 2
    assert registry.get_sample_value("contact_queue_breached_waiting", qc) == 1
    worst = {**qc, "window": "interval", "bound": "worst", "formula": "answered_over_offered"}
    assert registry.get_sample_value("contact_queue_projected_service_level_ratio", worst) == pytest.approx(3 / 8)
    # no leg ended: no AHT, so no staffing sample at all (never a made-up figure)
    samples = [s.name for f in registry.collect() for s in f.samples]
    assert not [n for n in samples if n.startswith(("contact_queue_required_agents", "contact_queue_staffing_gap_agents",
                                                    "contact_queue_predicted_"))]

    legs = [Contact(f"h{i}", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:02", agent="ag2")
            .wrapup("10:05:00", f"10:06:{i:02d}") for i in range(6)]
    book = run(sorted(events + by_time(*legs), key=lambda e: e.ts_ms), settings, flush=False).pipeline.queues
    registry = registry_of(book)
    [view] = staffing_view(book, book.latest_ms)
    assert view["inputs"] is not None and view["staffed_agents"] == 2
    for model, fig in view["models"].items():
        labels = {"queue": "Q1", "model": model}
        assert registry.get_sample_value("contact_queue_required_agents", labels) == fig["required_agents"]
        assert registry.get_sample_value("contact_queue_staffing_gap_agents", labels) == fig["required_agents"] - 2
        assert registry.get_sample_value("contact_queue_predicted_service_level_ratio", labels) == pytest.approx(
            fig["predicted_service_level"])


def test_provisional_gauge_of_unidentified_contacts():
    events = by_time(*contacts(("0",))) + [tick("2026-11-25T12:00:00Z")]
    registry = registry_of(run(events, flush=False).pipeline.queues)
    qc = {"queue": "Q1", "channel": "voice"}
    assert registry.get_sample_value("contact_resolution_provisional_unidentified_contacts", qc) == 5
    assert registry.get_sample_value("contact_resolution_provisional_contacts", qc) == 3
    assert registry.get_sample_value("contact_fcr_provisional_ratio", qc) == 1 / 2
