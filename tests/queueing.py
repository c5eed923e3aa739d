"""Queueing theory and exactly-M/M/c cases, shared by the simulator's Erlang and staffing tests and
by the core's Erlang test (a second, independent computation of Erlang-A).

Erlang-A is computed from the birth-death chain of the number of contacts in the system; the
derivation is in tests/unit/simulator/test_erlang.py's docstring.
"""
from __future__ import annotations

import math


def erlang_c(c: int, lam: float, mu: float, t: float) -> dict:
    """M/M/c, closed form: P(wait > 0) = C(c, a), P(W > t) = C e^{-(c mu - lam) t}, ASA = C / (c mu - lam)."""
    a = lam / mu
    assert a < c, "Erlang-C needs lam < c mu"
    term, total = 1.0, 1.0
    for k in range(1, c):
        term *= a / k
        total += term
    last = term * a / c * c / (c - a)  # a^c / c! * c / (c - a)
    p_wait = last / (total + last)
    return {"service_level": 1 - p_wait * math.exp(-(c * mu - lam) * t),
            "asa": p_wait / (c * mu - lam), "abandon": 0.0, "p_wait": p_wait}


def hypoexp_cdfs(rates: list[float], t: float) -> list[float]:
    """[P(E_0 + ... + E_j <= t) for every j], E_i independent Exp(rates[i]), by uniformization.

    Jumps come at rate L = max(rates); a jump ends the current stage i with probability
    rates[i] / L. After a Poisson(L t) number of jumps, P(sum of the first j + 1 <= t) is the
    probability that at least j + 1 stages are done. Truncation error below 1e-15.
    """
    lam = max(rates)
    n = len(rates)
    p = [1.0] + [0.0] * n  # p[s]: probability that exactly s stages are done
    mean = lam * t
    weight = math.exp(-mean)
    out = [0.0] * n
    k = 0
    while True:
        tail = 0.0
        for s in range(n, 0, -1):
            tail += p[s]
            out[s - 1] += weight * tail
        if k > mean + 12 * math.sqrt(mean) + 20:
            return out
        k += 1
        for s in range(n, 0, -1):
            moved = p[s - 1] * rates[s - 1] / lam
            p[s] += moved
            p[s - 1] -= moved
        weight *= mean / k


def hypoexp_cdf(rates: list[float], t: float) -> float:
    return hypoexp_cdfs(rates, t)[-1]


def erlang_a(c: int, lam: float, mu: float, theta: float, t: float) -> dict:
    """M/M/c+M (theta = 1 / mean patience; 0 = infinite patience): SL = P(answered, wait <= t),
    ASA = E[wait | answered], abandon = P(abandoned), all for an arriving contact."""
    # stationary distribution of the number in system, truncated where it is negligible
    pi = [1.0]
    n = 0
    while True:
        n += 1
        death = min(n, c) * mu + max(n - c, 0) * theta
        pi.append(pi[-1] * lam / death)
        if n > c and pi[-1] < 1e-18 * sum(pi):
            break
        if n > 100_000:
            raise ValueError("no stationary distribution (lam >= c mu with theta = 0?)")
    z = sum(pi)
    pi = [p / z for p in pi]
    sl = sum(pi[:c])                       # served at once, wait 0
    served = sl
    wait_served = 0.0
    abandon = 0.0
    stage_rates = [c * mu + (k + 1) * theta for k in range(len(pi) - c)]  # stage "k ahead" lasts Exp(.)
    cdfs = hypoexp_cdfs(stage_rates, t)
    p_served, mean_wait = 1.0, 0.0
    for n in range(c, len(pi)):
        j = n - c  # contacts ahead: stages j, j - 1, ..., 0
        p_served *= (c * mu + j * theta) / stage_rates[j]
        mean_wait += 1 / stage_rates[j]
        served += pi[n] * p_served
        abandon += pi[n] * (1 - p_served)
        wait_served += pi[n] * p_served * mean_wait
        sl += pi[n] * p_served * cdfs[j]
    return {"service_level": sl, "asa": wait_served / served, "abandon": abandon, "p_wait": 1 - sum(pi[:c])}


START = 1_795_392_000.0  # 2026-11-23T00:00:00Z
THRESHOLD = 20.0


def case_model(agents: int, arrivals_per_hour: float, mean_handle: float, patience: float | None) -> str:
    """A single queue that is exactly M/M/c (+M): every other behaviour of the simulator turned off."""
    return f"""
queues:
  - queue: q
    channel: voice
    arrivals_per_hour: {arrivals_per_hour}
    daily_curve: null
    agents: {agents}
    staffing_curve: null
    handle_time: {{distribution: exponential, mean: {mean_handle}}}
    answer_delay: 0
    patience_seconds: {'null' if patience is None else patience}
    flow_out: null
    hold: null
    transfer: null
    acw: null
    breaks: null
    issues: [x]
    resolve_probability: 0
    repeat: null
    survey: null
    qa: null
    churn: null
    auto_reply_probability: 0
"""
