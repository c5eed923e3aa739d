"""/metrics of a worker serves the same metric families as before the collectors were split per source
(issue 21); a rename would break the dashboards, the alert rules and docs/metrics.md."""
from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from processor.config import Settings

# `# TYPE` names of a worker's /metrics on main 6ba60ce (create_app, Redis configured), before the split.
FAMILIES = """
contact_agents contact_capacity_actual_contacts_per_hour contact_capacity_expected_contacts_per_hour
contact_capacity_slots contact_capacity_staffed_agent_seconds contact_capacity_staffed_agents contact_cost_per_contact
contact_fcr_provisional_ratio contact_queue_abandon_ratio contact_queue_abandoned contact_queue_aht_seconds
contact_queue_answered contact_queue_asa_seconds contact_queue_at_risk contact_queue_breached_waiting
contact_queue_flowed_out contact_queue_handled contact_queue_longest_wait_seconds contact_queue_max_wait_seconds
contact_queue_offered contact_queue_predicted_asa_seconds contact_queue_predicted_service_level_ratio
contact_queue_projected_service_level_ratio contact_queue_required_agents contact_queue_service_level_ratio
contact_queue_service_level_target_ratio contact_queue_service_level_threshold_seconds contact_queue_short_abandoned
contact_queue_staffing_gap_agents contact_queue_stale_contacts_total contact_queue_wait_seconds contact_queue_waiting
contact_reopen_provisional_ratio contact_repeat_provisional_ratio contact_resolution_provisional_contacts
contact_resolution_provisional_first_contacts contact_resolution_provisional_unidentified_contacts
kpi_assigned_partitions kpi_consumer_lag_messages kpi_event_loop_hold_cpu_max_seconds kpi_event_loop_hold_cpu_seconds
kpi_event_loop_hold_max_seconds kpi_event_loop_hold_seconds kpi_event_loop_step_max_seconds
kpi_events_dead_lettered_total kpi_events_duplicate_total kpi_events_processed_total kpi_input_fetch_stalls_total
kpi_input_offset_gaps_total kpi_input_offset_repeats_total kpi_input_offsets_held_total kpi_last_event_age_seconds
kpi_output_batches_in_flight kpi_redis_snapshot_errors_total kpi_redis_snapshot_writes_total kpi_redis_up
kpi_rollups_published_total kpi_stream_time_seconds kpi_watermark_seconds
""".split()


@pytest.fixture
def registry():
    from processor.worker.app import create_app

    _, rt = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    return rt.registry


def test_the_worker_serves_the_same_families(registry):
    text = generate_latest(registry).decode()
    served = sorted(line.split()[2] for line in text.splitlines() if line.startswith("# TYPE"))
    assert served == sorted(FAMILIES)



def test_every_family_served_is_in_the_metrics_catalogue():
    """docs/metrics.md is the operator's list: a family served but not described there is unknown to them."""
    from pathlib import Path

    catalogue = (Path(__file__).parents[3] / "docs" / "metrics.md").read_text()
    documented = {f for f in FAMILIES if f"`{f}`" in catalogue or f"`{f}_total`" in catalogue}
    assert sorted(set(FAMILIES) - documented) == []
