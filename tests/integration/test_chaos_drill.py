"""A bounded run of the chaos drill (scripts/chaos_drill.py): two workers SIGKILLed and restarted at
random (one of them on an empty data folder or its own), the broker restarted once; at the end the
latest version of every rollup record and the dead letters equal `kpi replay`'s, and no (record,
version) was published with two contents. The long form runs many seeds (docs/reliability.md).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from processor.services import ApacheKafka

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location("chaos_drill", Path(__file__).parents[2] / "scripts" / "chaos_drill.py")
chaos_drill = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chaos_drill)


@pytest.fixture(scope="module")
def drill_broker(tmp_path_factory):
    """A broker of the drill's own: it is restarted during each run."""
    broker = ApacheKafka(tmp_path_factory.mktemp("drill-kafka"))
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("guarantee,seed", [("at_least_once", 24), ("exactly_once", 25)])
def test_a_short_chaos_drill_ends_equal_to_replay(drill_broker, tmp_path, guarantee, seed):
    result = chaos_drill.Drill(drill_broker, seed, guarantee, tmp_path, workers=2, minutes=70, chunks=4, kills=2,
                               settle_s=120).run()
    print(f"\nchaos drill seed {seed} {guarantee}: {result}")
    assert result["passed"], result
