"""The simulator's model: its duration distributions."""
from __future__ import annotations

import pytest

from processor.simulator import Dist


def test_distributions_have_their_means():
    import random
    rng = random.Random(1)
    for d in (Dist.exponential(100), Dist.lognormal(100, 60), Dist.uniform(50, 150), Dist.constant(100)):
        xs = [d.sample(rng) for _ in range(40_000)]
        mean = sum(xs) / len(xs)
        assert mean == pytest.approx(100, rel=0.02), d
    xs = [Dist.lognormal(100, 60).sample(rng) for _ in range(40_000)]
    sd = (sum((x - 100) ** 2 for x in xs) / len(xs)) ** 0.5
    assert sd == pytest.approx(60, rel=0.05)
