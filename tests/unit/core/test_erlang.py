"""processor/core/erlang.py against independent third-party work.

Erlang C: `erlanglib` (PyPI, test extra) evaluates the textbook closed form with factorials in
1000-digit Decimal arithmetic: its `erlang_c(N, A)` is P(wait > 0), `service_level` is
1 - Pw e^{-(N - A) t / AHT} and `average_speed_of_answer` Pw AHT / (N - A); it has no search for
the required agents (its `required_agents` only divides by 1 - shrinkage), so the test searches its
service level itself. Our figures agree to 1e-9 on a grid of loads, agents, AHTs and thresholds.

Erlang A: no third-party formula is trusted (at least one PyPI "Erlang A" package returns the
Erlang C waiting probability unchanged); the M/M/n+M queue is simulated by `ciw` (PyPI, test
extra, its own reneging model) and the service level, P(abandon) and mean waits must fall within
4 batch-means standard errors of our figures, while Erlang C's figures must not (the simulation
can tell the two apart).
"""
from __future__ import annotations

import math
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from processor.core.erlang import erlang_a, erlang_c, erlang_c_wait_probability, required_servers

erlanglib = pytest.importorskip("erlanglib")  # in the test extra: missing means the extra was not installed

GRID_SERVERS = (1, 2, 3, 5, 8, 13, 25, 50, 100, 150)
GRID_OCCUPANCY = (0.1, 0.5, 0.8, 0.95, 0.99)
GRID_AHT = (30.0, 300.0)
GRID_T = (0.0, 20.0, 60.0)


def lib_figures(n: int, load: float, aht: float, t: float) -> tuple[float, float, float]:
    pw = erlanglib.erlang_c(n, load)
    return pw, erlanglib.service_level(n, load, pw, t, aht), erlanglib.average_speed_of_answer(n, load, pw, aht)


def test_erlang_c_equals_erlanglib_on_a_grid():
    checked = 0
    for n in GRID_SERVERS:
        for occ in GRID_OCCUPANCY:
            load = n * occ
            pw = erlanglib.erlang_c(n, load)
            assert erlang_c_wait_probability(n, load) == pytest.approx(pw, abs=1e-9, rel=1e-9)
            for aht in GRID_AHT:
                asa = erlanglib.average_speed_of_answer(n, load, pw, aht)
                for t in GRID_T:
                    sl = erlanglib.service_level(n, load, pw, t, aht)
                    ours = erlang_c(n, load / aht, aht, t)
                    assert ours["service_level"] == pytest.approx(sl, abs=1e-9), (n, load, aht, t)
                    assert ours["asa_seconds"] == pytest.approx(asa, abs=1e-9, rel=1e-9), (n, load, aht, t)
                    assert ours["wait_probability"] == pytest.approx(pw, abs=1e-9), (n, load, aht, t)
                    checked += 1
    assert checked == len(GRID_SERVERS) * len(GRID_OCCUPANCY) * len(GRID_AHT) * len(GRID_T)


def lib_required(load: float, aht: float, t: float, target: float) -> int:
    """The fewest agents whose erlanglib service level reaches the target (more agents than the load)."""
    n = math.floor(load) + 1
    while True:
        pw = erlanglib.erlang_c(n, load)
        if erlanglib.service_level(n, load, pw, t, aht) >= target:
            return n
        n += 1


@pytest.mark.parametrize("load", (0.4, 2.5, 9.7, 42.0))
def test_required_servers_erlang_c_equals_erlanglib(load):
    for aht in (60.0, 300.0):
        for t in (10.0, 60.0):
            for target in (0.5, 0.8, 0.9, 0.99):
                want = lib_required(load, aht, t, target)
                assert required_servers(load / aht, aht, None, t, target, "erlang_c") == want, (load, aht, t, target)


def test_hundreds_and_thousands_of_servers_are_finite_and_agree():
    """No factorial: 300 servers agree with erlanglib's 1000-digit arithmetic; 5,000 stay finite."""
    pw, sl, asa = lib_figures(300, 290.0, 240.0, 20.0)
    ours = erlang_c(300, 290.0 / 240, 240.0, 20.0)
    assert ours["service_level"] == pytest.approx(sl, abs=1e-9) and ours["asa_seconds"] == pytest.approx(asa, rel=1e-9)
    for n, occ in ((2000, 0.97), (5000, 0.99), (5000, 0.5)):
        c = erlang_c(n, n * occ / 300, 300.0, 20.0)
        a = erlang_a(n, n * occ / 300, 300.0, 120.0, 20.0)
        for fig in (c, a):
            assert all(v is not None and math.isfinite(v) and v >= 0 for v in fig.values()), (n, occ, fig)
            assert 0 <= fig["service_level"] <= 1
        assert a["service_level"] >= c["service_level"] - 1e-12  # abandons take load off the queue
    need = required_servers(5000 * 0.99 / 300, 300.0, 120.0, 20.0, 0.8, "erlang_a")
    assert need is not None and 0 < need < 5000


# ----------------------------------------------------------------------------------------- properties

@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 60), occ=st.floats(0.05, 1.6), aht=st.floats(10, 900), patience=st.floats(5, 3000),
       t=st.floats(0, 120))
@example(n=1, occ=0.8984375, aht=128, patience=5.0, t=0.0)
def test_erlang_a_is_a_probability_law_and_tends_to_erlang_c(n, occ, aht, patience, t):
    lam = n * occ / aht
    a = erlang_a(n, lam, aht, patience, t)
    assert 0 <= a["service_level"] <= 1 - a["abandon"] + 1e-12
    assert 0 <= a["abandon"] <= 1 and a["asa_seconds"] is not None and a["asa_seconds"] >= 0
    # answered at most n / load of the arrivals (the servers' capacity)
    assert 1 - a["abandon"] <= n / (lam * aht) + 1e-9
    more = erlang_a(n + 1, lam, aht, patience, t)
    assert more["service_level"] >= a["service_level"] - 1e-12 and more["abandon"] <= a["abandon"] + 1e-12
    if occ < 0.9:  # patience far longer than any wait: Erlang C
        c = erlang_c(n, lam, aht, t)
        # Finite patience moves the figures by about ASA / patience / (1 - occupancy): with 1e9 s that
        # is 1e-5 at n=1, occ 0.9, aht 128 (Hypothesis found it); it shrinks tenfold per decade of patience.
        very_patient = erlang_a(n, lam, aht, 1e12, t)
        assert very_patient["service_level"] == pytest.approx(c["service_level"], rel=1e-5, abs=1e-9)
        assert very_patient["asa_seconds"] == pytest.approx(c["asa_seconds"], rel=1e-5, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(load=st.floats(0.1, 80), aht=st.floats(30, 600), t=st.floats(1, 60), target=st.floats(0.3, 0.95),
       patience=st.floats(10, 600))
def test_required_servers_is_the_fewest_that_reach_the_target(load, aht, t, target, patience):
    lam = load / aht
    for model, p in (("erlang_c", None), ("erlang_a", patience)):
        n = required_servers(lam, aht, p, t, target, model)
        assert n is not None
        fig = (erlang_a(n, lam, aht, p, t) if model == "erlang_a" else erlang_c(n, lam, aht, t))
        assert fig["service_level"] >= target
        if n > 1:
            fewer = erlang_a(n - 1, lam, aht, p, t) if model == "erlang_a" else erlang_c(n - 1, lam, aht, t)
            assert fewer["service_level"] < target
    # (Erlang A may need more than Erlang C: an abandon counts against the service level, as in answered_over_offered)


def test_no_load_needs_no_server_and_a_target_of_one_is_never_reached():
    assert required_servers(0.0, 180.0, None, 20.0, 0.8, "erlang_c") == 0
    assert required_servers(0.1, 180.0, None, 20.0, 1.0, "erlang_c", limit=2000) is None
    unstable = erlang_c(5, 6 / 180, 180.0, 20.0)
    assert unstable["service_level"] == 0.0 and unstable["asa_seconds"] is None


# ----------------------------------------------------------------------------------------- Erlang A vs ciw

def simulate(servers: int, lam: float, aht: float, patience: float, t: float, hours: float, seed: int,
             batches: int = 20) -> dict:
    """M/M/n+M in ciw; figures of the arrivals after a 1 h warm-up and before the last hour, by batch means."""
    import ciw

    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(lam)],
                                 service_distributions=[ciw.dists.Exponential(1 / aht)],
                                 number_of_servers=[servers],
                                 reneging_time_distributions=[ciw.dists.Exponential(1 / patience)])
    ciw.seed(seed)
    sim = ciw.Simulation(network)
    sim.simulate_until_max_time(hours * 3600)
    first, last = 3600.0, (hours - 1) * 3600
    width = (last - first) / batches
    acc = [{"n": 0, "within": 0, "abandoned": 0, "served": 0, "wait_served": 0.0} for _ in range(batches)]
    for r in sim.get_all_records():
        if not first <= r.arrival_date < last:
            continue
        b = acc[int((r.arrival_date - first) // width)]
        b["n"] += 1
        if r.record_type == "renege":
            b["abandoned"] += 1
        else:
            b["served"] += 1
            b["wait_served"] += r.waiting_time
            b["within"] += r.waiting_time <= t
    figs = [{"service_level": b["within"] / b["n"], "abandon": b["abandoned"] / b["n"],
             "asa_seconds": b["wait_served"] / b["served"]} for b in acc]
    out = {}
    for k in figs[0]:
        xs = [f[k] for f in figs]
        m = sum(xs) / len(xs)
        out[k] = (m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)))
    out["arrivals"] = sum(b["n"] for b in acc)
    return out


ERLANG_A_CASES = {
    # name: servers, arrivals per hour, AHT s, mean patience s, T s, hours simulated
    "under_load": (10, 170.0, 180.0, 120.0, 20.0, 160),  # load 8.5: Erlang C is stable too
    "overloaded": (5, 130.0, 180.0, 60.0, 20.0, 160),   # load 6.5 on 5 servers: only abandonment keeps it stable
}


@pytest.mark.parametrize("name", list(ERLANG_A_CASES))
def test_erlang_a_matches_a_ciw_simulation(name):
    servers, per_hour, aht, patience, t, hours = ERLANG_A_CASES[name]
    lam = per_hour / 3600
    started = time.perf_counter()
    sim = simulate(servers, lam, aht, patience, t, hours, seed=7)
    theory = erlang_a(servers, lam, aht, patience, t)
    plain_c = erlang_c(servers, lam, aht, t)
    print(f"\n{name}: {sim['arrivals']} arrivals simulated in {time.perf_counter() - started:.1f} s; " + ", ".join(
        f"{k} sim {sim[k][0]:.4f} ± {sim[k][1]:.4f} vs Erlang A {theory[k]:.4f} (Erlang C {plain_c[k]})"
        for k in ("service_level", "abandon", "asa_seconds")))
    for k in ("service_level", "abandon", "asa_seconds"):
        mean, se = sim[k]
        assert abs(mean - theory[k]) <= 4 * se, (name, k, mean, se, theory[k])
    # the simulation tells Erlang A from Erlang C: an "Erlang A" returning Erlang C's figures fails here
    mean, se = sim["service_level"]
    assert abs(mean - plain_c["service_level"]) > 4 * se
    assert sim["abandon"][0] > 10 * sim["abandon"][1]


def test_erlang_a_equals_the_birth_death_chain_of_tests_queueing():
    """A second, independent computation: the chain with its hypoexponential waits by uniformization."""
    from tests.queueing import erlang_a as chain

    for c, lam, mu, theta, t in ((10, 11 / 180, 1 / 180, 1 / 120, 20), (3, 1.0, 0.4, 0.5, 2.0),
                                 (10, 200 / 3600, 1 / 180, 1 / 120, 20), (50, 0.3, 1 / 180, 1 / 60, 30)):
        want, got = chain(c, lam, mu, theta, t), erlang_a(c, lam, 1 / mu, 1 / theta, t)
        assert got["service_level"] == pytest.approx(want["service_level"], rel=1e-9)
        assert got["abandon"] == pytest.approx(want["abandon"], rel=1e-9)
        assert got["asa_seconds"] == pytest.approx(want["asa"], rel=1e-9)
        assert got["wait_probability"] == pytest.approx(want["p_wait"], rel=1e-9)
