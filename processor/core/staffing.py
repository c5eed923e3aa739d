"""Erlang staffing of a queue from observed figures: the inputs, the agents needed, the staffed agents.

Inputs from a bucket of ended segments and legs (a rolling window, or one interval):
  arrival rate = offered / the bucket's length; AHT = (talk + hold + ACW) / legs;
  mean patience = total wait of the ended segments / abandoned (the maximum-likelihood estimate of
  an exponential patience, every segment's wait being time at risk of abandoning; no abandon:
  infinite patience, and Erlang A is Erlang C).
Slots: one server is one concurrent contact an agent can take; `availability` (1 - shrinkage)
  is the share of staffed time spent able to take contacts. So servers needed n gives
  required agents = ceil(n / (concurrency x availability)), and the staffed agents now give
  floor(slots x availability) servers. Formulas and choices: docs/staffing.md.
"""
from __future__ import annotations

import math
from bisect import bisect_right

from .erlang import figures, required_servers
from .figures import aht_seconds
from .settings import QueueSettings
from .stats import SegmentStats

MODELS = ("erlang_c", "erlang_a")


def staffed_ms(history: list, since: int, until: int) -> int:
    """Milliseconds of [since, until) in a state other than offline, from a presence history sorted by
    start: (start, state) or (start, tie, state) entries. Starts at the state held at `since`: every
    /metrics scrape calls this for each agent of each queue."""
    total = 0
    first = max(0, bisect_right(history, since, key=_start) - 1)
    for i in range(first, len(history)):
        entry = history[i]
        start, state = entry[0], entry[-1]
        if start >= until:
            break
        end = history[i + 1][0] if i + 1 < len(history) else until
        if state != "offline":
            lo, hi = max(start, since), min(end, until)
            if hi > lo:
                total += hi - lo
    return total


def _start(entry: tuple) -> int:
    return entry[0]


def apt_id(agent: str, event_id: str, queue: str) -> str:
    """The fact id of one agent.state_changed as a point of the agent's presence in one queue ("apt" facts:
    ("apt", queue, agent, ts_ms, event_id, state), routed by queue; stage one writes one per queue listed)."""
    return f"ap|{agent}|{event_id}|{queue}"


def erlang_inputs(s: SegmentStats, seconds: float) -> dict | None:
    """{arrival_rate (per second), aht_seconds, patience_seconds (None: infinite)}, or None without an
    AHT (no leg ended) or a length. patience_seconds is 0.0 when contacts abandoned after no wait at all."""
    aht = aht_seconds(s)
    if aht is None or aht <= 0 or seconds <= 0:
        return None
    patience = None if s.abandoned <= 0 else s.wait_ms / 1000 / s.abandoned
    return {"arrival_rate": s.offered / seconds, "aht_seconds": aht, "patience_seconds": patience}


def required_agents(inputs: dict, q: QueueSettings, concurrency: float, model: str) -> int | None:
    """Agents to staff for the queue's T and target under `model`; None when no count reaches it (or
    Erlang A has no patience estimate: every abandon after no wait)."""
    patience = inputs["patience_seconds"]
    if model == "erlang_a" and patience is not None and patience <= 0:
        return None
    n = required_servers(inputs["arrival_rate"], inputs["aht_seconds"], patience if model == "erlang_a" else None,
                         q.threshold_seconds, q.service_level_target, model)
    if n is None:
        return None
    return math.ceil(n / (concurrency * q.availability) - 1e-9)


def predicted(inputs: dict, q: QueueSettings, servers: int, model: str) -> dict[str, float | None] | None:
    """Service level and ASA that `servers` would give; None without a load or a patience estimate."""
    patience = inputs["patience_seconds"]
    if inputs["arrival_rate"] <= 0 or (model == "erlang_a" and patience is not None and patience <= 0):
        return None
    return figures(model, servers, inputs["arrival_rate"], inputs["aht_seconds"], patience if model == "erlang_a" else None,
                   q.threshold_seconds)


def concurrency(members: dict[str, str], caps: dict[str, int]) -> float:
    """Mean slots per agent: over the staffed agents, else over every agent known to serve the queue, else 1."""
    staffed = [a for a, state in members.items() if state != "offline"]
    pool = staffed or list(members)
    return sum(caps.get(a, 1) for a in pool) / len(pool) if pool else 1.0


def staffing_figures(inputs: dict | None, q: QueueSettings, members: dict[str, str], caps: dict[str, int]) -> dict:
    """Per model: required agents, and with the agents staffed now the predicted SL, ASA and the gap
    (required - staffed; negative: more staffed than needed). Missing inputs give None, never a guess."""
    staffed = [a for a, state in members.items() if state != "offline"]
    slots = sum(caps.get(a, 1) for a in staffed)
    servers = math.floor(slots * q.availability + 1e-9)
    conc = concurrency(members, caps)
    models = {}
    for model in MODELS:
        need = required_agents(inputs, q, conc, model) if inputs is not None else None
        fig = predicted(inputs, q, servers, model) if inputs is not None else None
        models[model] = {
            "required_agents": need,
            "staffing_gap_agents": None if need is None else need - len(staffed),
            "predicted_service_level": None if fig is None else fig["service_level"],
            "predicted_asa_seconds": None if fig is None else fig["asa_seconds"],
        }
    return {"staffed_agents": len(staffed), "servers": servers, "concurrency": conc, "inputs": inputs,
            "models": models}


def interval_staffing(s: SegmentStats, q: QueueSettings, interval_ms: int, members: dict[str, str],
                      caps: dict[str, int], timelines: dict[str, list[tuple[int, str, str]]] | None, start: int) -> dict:
    """The `queue_interval` fields: required agents per model for the interval's own arrivals, AHT and
    patience, and the mean staffed agents of the queue over the interval from the agents' presence
    timelines (sorted (ts, event id, state) points of the queue; None without any)."""
    inputs = erlang_inputs(s, interval_ms / 1000)
    conc = concurrency(members, caps)
    required = {m: (required_agents(inputs, q, conc, m) if inputs is not None else None) for m in MODELS}
    staffed: float | None = None
    if timelines:
        total = 0
        for agent in sorted(timelines):
            total += staffed_ms(timelines[agent], start, start + interval_ms)
        staffed = total / interval_ms
    return {"required_agents": required, "staffed_agents": staffed}
