"""Erlang C (M/M/n) and Erlang A (M/M/n+M) service level, ASA, abandonment and required servers.

Stable for thousands of servers: the Erlang B recursion on its inverse (no factorial, no power),
the queue-length weights in log space, and the Erlang A wait law as a negative-binomial sum built
term by term. Derivations and the choices behind them: docs/staffing.md.

Units: rates per second, times in seconds. `servers` are slots (agents x concurrency, net of
shrinkage): the shell converts (core/staffing.py). SL is P(answered with wait <= t) over all
arrivals, the contract's `answered_over_offered` with no short-abandon limit.
"""
from __future__ import annotations

import math
from functools import lru_cache

# Weights of queue lengths below this share of the largest are dropped (their sum is < 1e-16).
_NEGLIGIBLE_LOG = math.log(1e-18)
MAX_QUEUE_STATES = 200_000  # a guard only: reached when patience is very long and the load far above capacity


def inverse_erlang_b(servers: int, load: float) -> float:
    """1 / B(servers, load) by the recursion 1/B(k) = 1 + (k / load) / B(k-1); inf when B underflows."""
    inv = 1.0
    for k in range(1, servers + 1):
        inv = 1.0 + inv * k / load
        if inv == math.inf:
            break
    return inv


def erlang_c_wait_probability(servers: int, load: float) -> float:
    """Erlang C: P(wait > 0) = 1 / ((1 - rho) / B + rho), rho = load / servers < 1."""
    rho = load / servers
    return 1.0 / ((1.0 - rho) * inverse_erlang_b(servers, load) + rho)


def erlang_c(servers: int, arrival_rate: float, handle_seconds: float, threshold_seconds: float) -> dict[str, float | None]:
    """M/M/n: {service_level, asa_seconds, abandon, wait_probability}. Unstable (load >= servers):
    service level 0 and no ASA (the queue grows without bound)."""
    load = arrival_rate * handle_seconds
    if load <= 0.0:
        return {"service_level": 1.0, "asa_seconds": 0.0, "abandon": 0.0, "wait_probability": 0.0}
    if servers <= 0 or load >= servers:
        return {"service_level": 0.0, "asa_seconds": None, "abandon": 0.0, "wait_probability": 1.0}
    c = erlang_c_wait_probability(servers, load)
    sl = 1.0 - c * math.exp(-(servers - load) * threshold_seconds / handle_seconds)
    return {"service_level": sl, "asa_seconds": c * handle_seconds / (servers - load), "abandon": 0.0,
            "wait_probability": c}


def erlang_a(servers: int, arrival_rate: float, handle_seconds: float, patience_seconds: float | None,
             threshold_seconds: float) -> dict[str, float | None]:
    """M/M/n+M (exponential patience of mean `patience_seconds`; None = infinite: Erlang C).

    An arrival finds n + j in the system with probability pi_{n+j} = pi_n prod_{i<=j} lam / (n mu + i theta).
    With j ahead it is answered with probability x / (x + j + 1), x = n mu / theta, after a wait
    Z_{j+1} = sum_{i=1}^{j+1} Exp(n mu + i theta), and P(Z_m > t) = P(N <= m - 1) for N negative
    binomial (r = x + 1, p = e^{-theta t}) (docs/staffing.md).
    """
    if patience_seconds is None:
        return erlang_c(servers, arrival_rate, handle_seconds, threshold_seconds)
    lam = arrival_rate
    load = lam * handle_seconds
    if load <= 0.0:
        return {"service_level": 1.0, "asa_seconds": 0.0, "abandon": 0.0, "wait_probability": 0.0}
    if servers <= 0:
        return {"service_level": 0.0, "asa_seconds": None, "abandon": 1.0, "wait_probability": 1.0}
    theta = 1.0 / patience_seconds
    nmu = servers / handle_seconds
    t = threshold_seconds
    # log rho_j = sum_{i<=j} log(lam / (n mu + i theta)), j = 0.. until negligible past the peak
    log_rho = [0.0]
    peak = 0.0
    j = 0
    log_lam = math.log(lam)
    while j < MAX_QUEUE_STATES:
        j += 1
        nxt = log_rho[-1] + log_lam - math.log(nmu + j * theta)
        log_rho.append(nxt)
        if nxt > peak:
            peak = nxt
        elif nxt - peak < _NEGLIGIBLE_LOG:
            break
    scaled = [math.exp(v - peak) for v in log_rho]  # rho_j e^{-peak}
    a_scaled = math.fsum(scaled)
    inv_b = inverse_erlang_b(servers, load)
    # pi_n = 1 / ((1 - B) / B + A): in the same scale, pi_{n+j} = scaled_j / (((1/B) - 1) e^{-peak} + A e^{-peak})
    log_free = math.log(inv_b - 1.0) - peak if inv_b > 1.0 else -math.inf
    if log_free > 700.0:  # the weight of a wait is below 1e-300: nobody waits
        return {"service_level": 1.0, "asa_seconds": 0.0, "abandon": 0.0, "wait_probability": 0.0}
    free = math.exp(log_free) if log_free > -math.inf else 0.0
    norm = free + a_scaled
    p_no_wait = free / norm
    x = nmu / theta
    log_u = -theta * t                      # ln p, p = e^{-theta t}
    q = -math.expm1(log_u)                  # 1 - p
    log_q = math.log(q) if q > 0.0 else -math.inf
    log_term = (x + 1.0) * log_u            # ln P(N = 0)
    nb_cdf = 0.0                            # P(N <= j)
    hazard_sum = 0.0                        # sum_{i=1}^{j+1} 1 / (n mu + i theta): mean wait if answered
    served = p_no_wait
    within = p_no_wait
    wait_total = 0.0
    for j, s in enumerate(scaled):
        w = s / norm
        if j > 0:
            log_term += log_q + math.log((x + j) / j) if log_q > -math.inf else -math.inf
        nb_cdf = min(1.0, nb_cdf + (math.exp(log_term) if log_term > -745.0 else 0.0))
        hazard_sum += 1.0 / (nmu + (j + 1) * theta)
        answered = w * x / (x + j + 1)
        served += answered
        within += answered * (1.0 - nb_cdf)
        wait_total += answered * hazard_sum
    return {"service_level": within, "asa_seconds": wait_total / served if served > 0 else None,
            "abandon": max(0.0, 1.0 - served), "wait_probability": 1.0 - p_no_wait}


@lru_cache(maxsize=4096)
def figures(model: str, servers: int, arrival_rate: float, handle_seconds: float, patience_seconds: float | None,
            threshold_seconds: float) -> dict[str, float | None]:
    """erlang_a or erlang_c, remembered: every /metrics scrape asks again with the same inputs until
    a minute completes (do not modify the dict returned)."""
    if model == "erlang_a":
        return erlang_a(servers, arrival_rate, handle_seconds, patience_seconds, threshold_seconds)
    return erlang_c(servers, arrival_rate, handle_seconds, threshold_seconds)


@lru_cache(maxsize=4096)
def required_servers(arrival_rate: float, handle_seconds: float, patience_seconds: float | None,
                     threshold_seconds: float, target: float, model: str, limit: int = 100_000) -> int | None:
    """The fewest servers whose service level reaches `target` (Erlang C: also more servers than the
    load). None when no count up to `limit` reaches it, and for a target of 1.0 (only approached).

    Service level grows with servers, and n servers answer at most n / load of the arrivals, so the
    search is a bisection between ceil(target x load) and the first doubling that reaches the target.
    """
    load = arrival_rate * handle_seconds
    if load <= 0.0:
        return 0
    if target >= 1.0:
        return None  # with Poisson arrivals some contact always waits longer than any T

    def reaches(n: int) -> bool:
        fig = erlang_a(n, arrival_rate, handle_seconds, patience_seconds, threshold_seconds) if model == "erlang_a" \
            else erlang_c(n, arrival_rate, handle_seconds, threshold_seconds)
        sl = fig["service_level"]
        return sl is not None and sl >= target

    lo = max(1, math.ceil(target * load - 1e-9))
    if model != "erlang_a" or patience_seconds is None:
        lo = max(lo, math.floor(load) + 1)
    if reaches(lo):
        return lo
    hi = lo
    while True:
        hi = min(limit, 2 * hi + 1)
        if reaches(hi):
            break
        if hi >= limit:
            return None
        lo = hi
    while hi - lo > 1:  # reaches(hi), not reaches(lo)
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return hi
