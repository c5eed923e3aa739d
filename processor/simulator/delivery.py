"""The events as a feed delivers them, and as `kpi simulate` writes them: the two orders the tests
and tools read (event-time order, or delivery order with duplicates and disorder); the JSON line is processor/jsonline.py."""
from __future__ import annotations

from .simulation import Simulation

def sorted_events(sim: Simulation) -> list[dict]:
    """All events in event-time order, each re-sent right after itself with the duplicate probability."""
    if sim.disorder_ms:
        sim = _without_disorder(sim)
    return sim.delivered(in_time_order=True)


def delivered_events(sim: Simulation) -> list[dict]:
    """The events in delivery order: duplicates, and out of order by less than `disorder_seconds`."""
    return sim.delivered()


def _without_disorder(sim: Simulation) -> Simulation:
    sim.run()
    clone = Simulation.__new__(Simulation)
    clone.__dict__.update(sim.__dict__)
    clone.disorder_ms = 0
    return clone


