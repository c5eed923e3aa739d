"""Settings from YAML reach the core: per-queue overrides, inherited defaults, calendars (processor/config.py)."""
from __future__ import annotations

import pytest

from processor.config import ConfigError, Settings, load_settings
from processor.core.settings import Calendar, QueueSettings
from tests.coretools import Contact, run


YAML = """
interval_minutes: 15
lateness_seconds: 30
defaults:
  threshold_seconds: 30
  short_abandon_seconds: 10
  service_level_target: 0.7
  time_zone: Europe/Berlin
queues:
  sales:
    threshold_seconds: 10
    short_abandon_seconds: 2
    service_level_target: 0.9
    time_zone: America/New_York
"""


@pytest.fixture
def yaml_engine(tmp_path, monkeypatch):
    path = tmp_path / "kpi.yaml"
    path.write_text(YAML)
    monkeypatch.setenv("KPI_CONFIG", str(path))
    for name in ("KPI_DEFAULTS", "KPI_QUEUES", "KPI_INTERVAL_MINUTES", "KPI_LATENESS_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return Settings().engine()


def test_yaml_defaults_and_queue_overrides_reach_the_core(yaml_engine):
    assert yaml_engine.queue("support") == QueueSettings(30, 10, 0.7, "Europe/Berlin")   # an unlisted queue
    assert yaml_engine.queue("sales") == QueueSettings(10, 2, 0.9, "America/New_York")
    evs = []
    for q in ("sales", "support"):
        # waits 25 s (answered) and 8 s (abandoned) in each queue
        evs += Contact(f"{q}-1", created="10:00:00").queued(q, "10:00:00").answered(q, "10:00:25").events
        evs += Contact(f"{q}-2", created="10:00:00").queued(q, "10:00:00").abandoned(q, "10:00:08").events
    r = run(sorted(evs, key=lambda e: e.ts_ms), yaml_engine)
    sales, support = r.record("sales", "10:00:00"), r.record("support", "10:00:00")
    # sales T = 10, S = 2: 25 s is late, 8 s is a real abandon -> 0 / 2
    assert (sales["answered_within_threshold"], sales["short_abandoned"]) == (0, 0)
    assert sales["service_level"]["answered_over_offered"] == 0.0
    # support T = 30, S = 10 (YAML defaults): 25 s within, 8 s short -> 1 / (2 - 1)
    assert (support["answered_within_threshold"], support["short_abandoned"]) == (1, 1)
    assert support["service_level"]["answered_over_offered"] == 1.0
    assert (support["threshold_seconds"], support["service_level_target"]) == (30.0, 0.7)


def test_yaml_queue_entry_inherits_unset_keys_from_yaml_defaults(tmp_path, monkeypatch):
    path = tmp_path / "kpi.yaml"
    path.write_text("defaults:\n  threshold_seconds: 30\n  short_abandon_seconds: 10\n"
                    "  time_zone: Europe/Berlin\nqueues:\n  sales:\n    threshold_seconds: 10\n")
    monkeypatch.setenv("KPI_CONFIG", str(path))
    assert Settings().engine().queue("sales") == QueueSettings(10, 10, 0.8, "Europe/Berlin")


def test_calendar_from_yaml(tmp_path):
    path = tmp_path / "kpi.yaml"
    path.write_text("""
recontact_window_days: 3
queues:
  support:
    time_zone: Europe/Paris
    agent_hour_cost: 30
    calendar:
      hours:
        monday: ["08:00-12:00", "13:00-17:00"]
        sat: ["09:00-13:00"]
      holidays: [2026-12-25]
""")
    e = load_settings(path).engine()
    q = e.queue("support")
    assert q.calendar == Calendar(hours=(((480, 720), (780, 1020)), (), (), (), (), ((540, 780),), ()),
                                  holidays=frozenset({"2026-12-25"}))
    assert q.agent_hour_cost == 30 and (q.availability, q.occupancy_target) == (1.0, 0.85)
    assert e.recontact_window_ms == 3 * 86_400_000
    assert e.queue("other").calendar is None


@pytest.mark.parametrize("hours,words", [
    ('{funday: ["09:00-17:00"]}', "not a weekday"),
    ('{monday: ["17:00-09:00"]}', "ends before it starts"),
    ('{monday: ["09:00-17:00", "16:00-18:00"]}', "overlap"),
])
def test_bad_calendar_is_a_config_error(tmp_path, hours, words):
    path = tmp_path / "kpi.yaml"
    path.write_text(f"queues:\n  q:\n    calendar:\n      hours: {hours}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert "queues.q.calendar.hours" in str(exc.value) and words in str(exc.value)
