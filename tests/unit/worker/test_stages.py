"""What the stages put on the wire (processor/worker/stages.py)."""
from __future__ import annotations

import zlib

from processor.worker.stages import item, rollup_key, router


def test_rollup_message_keys_identify_records():
    base = {"interval_start": "2026-03-02T10:00:00.000Z", "queue_id": "q", "channel": "voice"}
    keys = [rollup_key({"kind": "queue_interval", **base}), rollup_key({"kind": "experience_interval", **base}),
            rollup_key({"kind": "resolution_day", **base}),
            rollup_key({"kind": "retention_day", "horizon_days": 30, **base}),
            rollup_key({"kind": "retention_day", "horizon_days": 60, **base}),
            rollup_key({"kind": "agent_interval", "agent_id": "a1", "interval_start": base["interval_start"]})]
    assert len(set(keys)) == len(keys)
    assert keys[0] == b"q|voice|2026-03-02T10:00:00.000Z"  # unchanged for queue_interval


def test_a_delta_on_the_wire_names_its_route_only_when_it_deletes():
    assert item("f|c1", "Q1", ("ast", "Q1", "voice", 1, 2)) == ["f|c1", ["ast", "Q1", "voice", 1, 2]]
    assert item("f|c1", "Q1", None) == ["f|c1", None, "Q1"]


def test_agents_and_customers_are_routed_by_a_stable_hash():
    route = router(4)
    # crc32, not Python's salted hash(): the same partition in every process and every run
    assert [route(key) for key in ("a1", "a2", "cu-1", "")] == [zlib.crc32(k.encode()) % 4 for k in ("a1", "a2", "cu-1", "")]
    assert {route(f"agent-{i}") for i in range(100)} == {0, 1, 2, 3}
