"""Live Erlang staffing closes the loop with the simulator: long steady runs at fixed staffing
(Poisson arrivals, exponential handle time and patience; the M/M/c and M/M/c+M cases of
simulator/test_erlang.py) are replayed through the processor; from the processor's own buckets
(arrival rate, AHT and patience after a warm-up) the required agents for the service level the run
actually reached come back as the staffing the simulation used, within one agent. The rollups'
staffed agents are that staffing too.
"""
from __future__ import annotations

import io
import json
import time

import pytest

from processor.core.events import parse_ts_ms
from processor.core.settings import EngineSettings, QueueSettings
from processor.core.staffing import erlang_inputs, required_agents
from processor.core.stats import SegmentStats
from processor.replay import replay_lines
from processor.simulator import Simulation, delivered_events, dumps, load_model_text
from tests.queueing import START, THRESHOLD, case_model

CASES = {
    # name: agents, arrivals per hour, mean handle s, mean patience s or None, hours, model
    "erlang_c": (4, 72, 120, None, 100, "erlang_c"),
    "erlang_a": (10, 200, 180, 120, 40, "erlang_a"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_required_agents_reproduce_the_simulated_staffing(name):
    agents, per_hour, handle, patience, hours, model = CASES[name]
    started = time.perf_counter()
    sim = Simulation(load_model_text(case_model(agents, per_hour, handle, patience)), seed=3, start=START,
                     duration_seconds=hours * 3600)
    lines = [dumps(ev).encode() for ev in delivered_events(sim)]
    # S = 0 (service level = answered within T / offered, the Erlang figure); retention long enough to
    # keep every interval bucket of the run for the measurement below
    queue = QueueSettings(threshold_seconds=THRESHOLD, short_abandon_seconds=0)
    engine = EngineSettings(default_queue=queue, retention_ms=int((hours + 2) * 3_600_000))
    out = io.StringIO()
    pipeline = replay_lines(lines, engine, out)
    first, end = (START + 3600) * 1000, (START + hours * 3600 - 900) * 1000  # warm-up, and the drain after the last arrival
    total = SegmentStats()
    for start, bucket in pipeline.queues.intervals[("q", "voice")].items():
        if first <= start and start + 900_000 <= end:
            total.merge(bucket)
    reached = total.answered_within / total.offered
    inputs = erlang_inputs(total, (end - first) / 1000)
    target = QueueSettings(threshold_seconds=THRESHOLD, service_level_target=reached)
    need = required_agents(inputs, target, 1.0, model)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    staffed = [r["staffed_agents"] for r in records if r["kind"] == "queue_interval"
               and first <= parse_ts_ms(r["interval_start"]) and parse_ts_ms(r["interval_start"]) + 900_000 <= end]
    print(f"\n{name}: {total.offered} contacts in {time.perf_counter() - started:.1f} s; service level reached "
          f"{reached:.4f} with {agents} agents; inputs {inputs}; {model} requires {need}; "
          f"staffed agents in the rollups {min(staffed)}..{max(staffed)}")
    assert abs(need - agents) <= 1, (name, need, agents)
    assert staffed and all(s == agents for s in staffed)
