"""The chaos drill's comparison with replay (scripts/chaos_drill.py `verdict`): a record streaming
published and later withdrew (a version counting nothing) is not a difference; anything else is."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def drill():
    spec = importlib.util.spec_from_file_location("chaos_drill", ROOT / "scripts" / "chaos_drill.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("chaos_drill", module)
    spec.loader.exec_module(module)
    return module


def day(queue: str, version: int, contacts: int, channel: str = "voice") -> dict:
    """A resolution_day record as the worker publishes it (seed 27017's, queue `none`)."""
    return {"kind": "resolution_day", "queue_id": queue, "channel": channel, "contacts": contacts,
            "first_contacts": contacts, "first_contact_resolved": 0, "fcr": 0.0 if contacts else None,
            "repeats": 0, "repeat_rate": 0.0 if contacts else None, "reopened": 0, "reopen_rate": None,
            "resolved": 0, "unidentified_contacts": 0, "interval_start": "2026-03-02T00:00:00.000Z",
            "interval_end": "2026-03-03T00:00:00.000Z", "time_zone": "UTC", "version": version,
            "window_days": 0.02}


def test_a_published_record_taken_back_to_zero_is_a_withdrawal_not_a_difference(drill):
    """Seed 27017: a contact counted under queue `none` when the day closed, published, then moved to
    its queue: version 2 counts nothing. Replay publishes no record for queue `none`."""
    feed = {"rollups": [day("sales", 1, 5)], "dead": []}
    streamed = [day("none", 1, 1), day("sales", 1, 4), day("none", 2, 0), day("sales", 2, 5)]
    passed, details = drill.verdict(streamed, [], feed, exactly_once=True)
    assert passed and details["withdrawn_records"] == 1 and details["wrong_records"] == 0


def test_a_record_replay_does_not_publish_still_differs_unless_it_counts_nothing(drill):
    feed = {"rollups": [day("sales", 1, 5)], "dead": []}
    passed, details = drill.verdict([day("sales", 1, 5), day("none", 2, 1)], [], feed, exactly_once=True)
    assert not passed and details["wrong_records"] == 1
    passed, details = drill.verdict([day("sales", 1, 5), day("none", 1, 0)], [], feed, exactly_once=True)
    assert not passed  # a first version counting nothing withdraws nothing


def test_a_record_replay_publishes_must_equal_it_even_when_streaming_counts_nothing(drill):
    feed = {"rollups": [day("sales", 1, 5)], "dead": []}
    passed, details = drill.verdict([day("sales", 1, 5), day("sales", 2, 0)], [], feed, exactly_once=True)
    assert not passed and details["wrong_records"] == 1 and details["withdrawn_records"] == 0
