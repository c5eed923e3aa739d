"""One queue entry of the YAML model (or the `defaults` it inherits), one group of keys per function.

Each function reads its keys from the entry into the QueueModel keyword arguments and raises a
ModelError naming the first bad key; `parse_entry` calls them in a fixed order, so the same bad
entry always gets the same message.
"""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import CHANNELS, FLAT, FLOW_OUT_REASONS, SURVEYS, ModelError, QueueModel
from .parse_values import curve, dist, group, num, prob

_ENTRY_KEYS = {
    "queue", "channel", "time_zone", "arrivals_per_hour", "daily_curve", "agents", "staffing_curve",
    "handle_time", "answer_delay", "patience_seconds", "flow_out", "hold", "transfer", "acw", "breaks",
    "issues", "resolve_probability", "repeat", "survey", "qa", "churn", "asynchronous",
    "auto_reply_probability", "reply_delay", "customer_reply", "reopen",
}

# Follow-ups with a probability and a delay: YAML group -> (probability field, delay field, extra keys).
_FOLLOW_UPS = (("qa", "qa_probability", "qa_delay", set()),
               ("churn", "churn_probability", "churn_delay", set()),
               ("reopen", "reopen_probability", "reopen_delay", set()),
               ("customer_reply", "customer_reply_probability", "customer_reply_delay", {"max_rounds"}))


def parse_entry(e: dict, where: str, partial: bool = False) -> QueueModel | None:
    """A QueueModel from one entry; with `partial` (the defaults) only checked, and None returned."""
    unknown = set(e) - _ENTRY_KEYS
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    kw: dict[str, Any] = {}
    for part in (_identity, _demand, _staffing, _durations, _flow_out, _hold, _transfer, _acw, _breaks,
                 _outcome, _asynchronous, _repeat, _survey, _follow_ups):
        part(e, where, kw, partial)
    if partial:
        return None
    return QueueModel(**kw)


def _identity(e: dict, where: str, kw: dict, partial: bool) -> None:
    """queue (required in a queue entry), channel, time_zone."""
    if "queue" in e:
        if not isinstance(e["queue"], str) or not e["queue"]:
            raise ModelError(f"{where}.queue: must be a non-empty string")
        kw["queue_id"] = e["queue"]
    elif not partial:
        raise ModelError(f"{where}.queue: required")
    if "channel" in e:
        kw["channel"] = e["channel"]
        if e["channel"] not in CHANNELS:
            raise ModelError(f"{where}.channel: must be one of {', '.join(CHANNELS)}")
    if "time_zone" in e:
        try:
            ZoneInfo(str(e["time_zone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ModelError(f"{where}.time_zone: unknown time zone {e['time_zone']!r}") from None
        kw["time_zone"] = str(e["time_zone"])


def _demand(e: dict, where: str, kw: dict, partial: bool) -> None:
    """arrivals_per_hour and its daily_curve (null: flat)."""
    if "arrivals_per_hour" in e:
        kw["arrivals_per_hour"] = num(e["arrivals_per_hour"], f"{where}.arrivals_per_hour")
    if "daily_curve" in e:
        kw["daily_curve"] = FLAT if e["daily_curve"] is None else curve(e["daily_curve"], f"{where}.daily_curve")


def _staffing(e: dict, where: str, kw: dict, partial: bool) -> None:
    """agents and the staffing_curve (shares of them on shift, null: all)."""
    if "agents" in e:
        v = e["agents"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ModelError(f"{where}.agents: must be an integer >= 0")
        kw["agents"] = v
    if "staffing_curve" in e:
        v = e["staffing_curve"]
        kw["staffing_curve"] = None if v is None else curve(v, f"{where}.staffing_curve")
        if kw["staffing_curve"] and max(kw["staffing_curve"]) > 1:
            raise ModelError(f"{where}.staffing_curve: shares of the agents, at most 1")


def _durations(e: dict, where: str, kw: dict, partial: bool) -> None:
    """handle_time, answer_delay, reply_delay and patience_seconds (null: infinite)."""
    for key in ("handle_time", "answer_delay", "reply_delay"):
        if key in e:
            kw[key] = dist(e[key], f"{where}.{key}")
    if "patience_seconds" in e:
        v = e["patience_seconds"]
        kw["patience_seconds"] = None if v is None else num(v, f"{where}.patience_seconds", strict=True)


def _flow_out(e: dict, where: str, kw: dict, partial: bool) -> None:
    """flow_out: {after_seconds, reason, to_queue}; null: none."""
    g = _switchable(e, "flow_out", where, {"after_seconds", "reason", "to_queue"}, "after_seconds",
                    "flow_out_after_seconds", kw)
    if g is None:
        return
    kw["flow_out_after_seconds"] = num(g["after_seconds"], f"{where}.flow_out.after_seconds")
    reason = g.get("reason", "overflow" if g.get("to_queue") else "timeout")
    if reason not in FLOW_OUT_REASONS:
        raise ModelError(f"{where}.flow_out.reason: must be one of {', '.join(FLOW_OUT_REASONS)}")
    kw["flow_out_reason"] = reason
    kw["flow_out_to"] = g.get("to_queue")


def _hold(e: dict, where: str, kw: dict, partial: bool) -> None:
    """hold: {probability, duration}; null: no holds."""
    if "hold" not in e:
        return
    g = group(e, "hold", where, {"probability", "duration"}) or {"probability": 0}
    kw["hold_probability"] = prob(g.get("probability", 0), f"{where}.hold.probability")
    if "duration" in g:
        kw["hold_duration"] = dist(g["duration"], f"{where}.hold.duration")


def _transfer(e: dict, where: str, kw: dict, partial: bool) -> None:
    """transfer: {probability, to: a queue id or a list}; null: no transfers."""
    if "transfer" not in e:
        return
    g = group(e, "transfer", where, {"probability", "to"}) or {"probability": 0}
    kw["transfer_probability"] = prob(g.get("probability", 0), f"{where}.transfer.probability")
    to = g.get("to")
    if to is not None:
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not all(isinstance(t, str) and t for t in to):
            raise ModelError(f"{where}.transfer.to: a queue id or a list of queue ids")
        kw["transfer_to"] = tuple(to)


def _acw(e: dict, where: str, kw: dict, partial: bool) -> None:
    """acw: a duration; null: no after-contact work."""
    if "acw" in e:
        kw["acw"] = None if e["acw"] is None else dist(e["acw"], f"{where}.acw")


def _breaks(e: dict, where: str, kw: dict, partial: bool) -> None:
    """breaks: {every, duration}; null: no breaks."""
    g = _switchable(e, "breaks", where, {"every", "duration"}, "every", "break_every", kw)
    if g is None:
        return
    kw["break_every"] = dist(g["every"], f"{where}.breaks.every")
    if "duration" in g:
        kw["break_duration"] = dist(g["duration"], f"{where}.breaks.duration")


def _outcome(e: dict, where: str, kw: dict, partial: bool) -> None:
    """issues (what the contacts are about) and resolve_probability."""
    if "issues" in e:
        v = e["issues"]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            raise ModelError(f"{where}.issues: a non-empty list of issue names")
        kw["issues"] = tuple(v)
    if "resolve_probability" in e:
        kw["resolve_probability"] = prob(e["resolve_probability"], f"{where}.resolve_probability")


def _asynchronous(e: dict, where: str, kw: dict, partial: bool) -> None:
    """auto_reply_probability and asynchronous (null: by channel)."""
    if "auto_reply_probability" in e:
        v = e["auto_reply_probability"]
        kw["auto_reply_probability"] = None if v is None else prob(v, f"{where}.auto_reply_probability")
    if "asynchronous" in e:
        v = e["asynchronous"]
        if v is not None and not isinstance(v, bool):
            raise ModelError(f"{where}.asynchronous: true, false or null (by channel)")
        kw["asynchronous"] = v


def _repeat(e: dict, where: str, kw: dict, partial: bool) -> None:
    """repeat: {after_abandon, retry_delay, if_unresolved, if_resolved, delay}; null: no repeats."""
    g = group(e, "repeat", where, {"after_abandon", "retry_delay", "if_unresolved", "if_resolved", "delay"})
    if "repeat" in e and g is None:
        g = {"after_abandon": 0, "if_unresolved": 0, "if_resolved": 0}
    if g is None:
        return
    for k, name in (("after_abandon", "retry_after_abandon"), ("if_unresolved", "repeat_if_unresolved"),
                    ("if_resolved", "repeat_if_resolved")):
        if k in g:
            kw[name] = prob(g[k], f"{where}.repeat.{k}")
    if "retry_delay" in g:
        kw["retry_delay"] = dist(g["retry_delay"], f"{where}.repeat.retry_delay")
    if "delay" in g:
        kw["repeat_delay"] = dist(g["delay"], f"{where}.repeat.delay")


def _survey(e: dict, where: str, kw: dict, partial: bool) -> None:
    """survey: {probability, kinds: {csat|ces|nps: weight}, delay}; null: no surveys."""
    g = group(e, "survey", where, {"probability", "kinds", "delay"})
    if "survey" in e and g is None:
        g = {"probability": 0}
    if g is None:
        return
    if "probability" in g:
        kw["survey_probability"] = prob(g["probability"], f"{where}.survey.probability")
    if "kinds" in g:
        kinds = g["kinds"]
        if not isinstance(kinds, dict) or not kinds or not set(kinds) <= set(SURVEYS) - {"complaint"}:
            raise ModelError(f"{where}.survey.kinds: a mapping of csat / ces / nps to weights "
                             "(complaint surveys follow contacts on the issue `complaint`)")
        kw["survey_kinds"] = tuple((k, num(w, f"{where}.survey.kinds.{k}")) for k, w in kinds.items())
    if "delay" in g:
        kw["survey_delay"] = dist(g["delay"], f"{where}.survey.delay")


def _follow_ups(e: dict, where: str, kw: dict, partial: bool) -> None:
    """qa, churn, reopen and customer_reply: {probability, delay} (customer_reply also max_rounds)."""
    for key, prob_name, delay_name, extra in _FOLLOW_UPS:
        g = group(e, key, where, {"probability", "delay"} | extra)
        if key in e and g is None:
            g = {"probability": 0}
        if g is None:
            continue
        if "probability" in g:
            kw[prob_name] = prob(g["probability"], f"{where}.{key}.probability")
        if "delay" in g:
            kw[delay_name] = dist(g["delay"], f"{where}.{key}.delay")
        if "max_rounds" in g:
            v = g["max_rounds"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ModelError(f"{where}.{key}.max_rounds: an integer >= 1")
            kw["max_rounds"] = v


def _switchable(e: dict, key: str, where: str, allowed: set[str], required: str, off: str, kw: dict) -> dict | None:
    """A group that null switches off (`off` set to None) and that needs `required` when given; None
    when it is absent or null, else the group."""
    if key not in e:
        return None
    g = group(e, key, where, allowed)
    if g is None:
        kw[off] = None
        return None
    if required not in g:
        raise ModelError(f"{where}.{key}.{required}: required")
    return g
