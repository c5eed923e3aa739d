"""The worker keeps long-lived state out of the cycle collector's way, and still sweeps (processor/gc_policy.py)."""
from __future__ import annotations

import gc
import weakref

from processor.gc_policy import GcPolicy


class Node:
    pass


def test_freeze_then_sweep_collects_a_cycle_that_became_garbage_while_frozen():
    now = [0.0]
    policy = GcPolicy(clock=lambda: now[0], sweep_seconds=600)
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle: only the cycle collector frees it
        probe = weakref.ref(a)
        policy.tick()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert probe() is not None  # frozen: out of the collector's sight
        now[0] = 599.0
        policy.tick()
        assert policy.sweeps == 0 and probe() is not None
        now[0] = 600.0
        policy.tick()
        assert policy.sweeps == 1 and probe() is None  # the sweep found it
        assert gc.get_freeze_count() > 0  # and froze what is left again
    finally:
        gc.unfreeze()


def test_a_tick_frees_a_cycle_that_is_already_garbage_instead_of_freezing_it():
    """Between two ticks the young collection may not have run at all (frees keep CPython's count down):
    the tick collects the young objects first, so a cycle made and dropped since is not frozen."""
    policy = GcPolicy(sweep_seconds=600)
    gc.disable()  # as when the count never reaches the threshold
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        probe = weakref.ref(a)
        del a, b
        policy.tick()
        assert probe() is None
    finally:
        gc.enable()
        gc.unfreeze()
