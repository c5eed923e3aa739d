"""Reading a model from YAML (a file, a text or parsed data) and writing it back as YAML-ready data.

Entry points only: each queue entry is parsed in `parse_queue`, the whole-model groups in
`parse_population`, leaf values in `parse_values`.
"""
from __future__ import annotations

from typing import Any

from .model import Model, ModelError
from .parse_population import parse_customers, parse_feed
from .parse_queue import parse_entry

def load_model(path) -> Model:
    """The model in a YAML file (see deploy/config/simulation.example.yaml). Raises ModelError."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ModelError(f"cannot read the model file: {exc}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"model file is not valid YAML: {exc}") from None
    return model_from_dict(data)


def load_model_text(text: str) -> Model:
    import yaml

    return model_from_dict(yaml.safe_load(text))


_TOP_KEYS = {"defaults", "queues", "customers", "feed"}


def model_from_dict(data: Any) -> Model:
    if not isinstance(data, dict):
        raise ModelError("the model must be a mapping with a `queues` list")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ModelError(f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ModelError("defaults: must be a mapping")
    entries = data.get("queues")
    if not isinstance(entries, list) or not entries:
        raise ModelError("queues: must be a non-empty list of queue entries")
    parse_entry(defaults, "defaults", partial=True)  # report bad defaults once, under their own name
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ModelError(f"queues[{i}]: must be a mapping")
        out.append(parse_entry({**defaults, **entry}, f"queues[{i}]"))
    return Model(tuple(out), parse_customers(data.get("customers")), parse_feed(data.get("feed")))

def model_to_dict(model: Model) -> dict:
    """The model as YAML-ready data (what `load_model` reads back to an equal model)."""
    out = []
    for q in model.queues:
        d: dict[str, Any] = {
            "queue": q.queue_id, "channel": q.channel, "time_zone": q.time_zone,
            "arrivals_per_hour": q.arrivals_per_hour, "daily_curve": list(q.daily_curve), "agents": q.agents,
            "staffing_curve": None if q.staffing_curve is None else list(q.staffing_curve),
            "handle_time": q.handle_time.to_yaml(), "answer_delay": q.answer_delay.to_yaml(),
            "patience_seconds": q.patience_seconds,
            "flow_out": None if q.flow_out_after_seconds is None else {
                "after_seconds": q.flow_out_after_seconds, "reason": q.flow_out_reason, "to_queue": q.flow_out_to},
            "hold": {"probability": q.hold_probability, "duration": q.hold_duration.to_yaml()},
            "transfer": {"probability": q.transfer_probability,
                         "to": None if q.transfer_to is None else list(q.transfer_to)},
            "acw": None if q.acw is None else q.acw.to_yaml(),
            "breaks": None if q.break_every is None else {"every": q.break_every.to_yaml(),
                                                          "duration": q.break_duration.to_yaml()},
            "issues": list(q.issues), "resolve_probability": q.resolve_probability,
            "repeat": {"after_abandon": q.retry_after_abandon, "retry_delay": q.retry_delay.to_yaml(),
                       "if_unresolved": q.repeat_if_unresolved, "if_resolved": q.repeat_if_resolved,
                       "delay": q.repeat_delay.to_yaml()},
            "survey": {"probability": q.survey_probability, "kinds": dict(q.survey_kinds),
                       "delay": q.survey_delay.to_yaml()},
            "qa": {"probability": q.qa_probability, "delay": q.qa_delay.to_yaml()},
            "churn": {"probability": q.churn_probability, "delay": q.churn_delay.to_yaml()},
            "asynchronous": q.asynchronous, "auto_reply_probability": q.auto_reply_probability,
            "reply_delay": q.reply_delay.to_yaml(),
            "customer_reply": {"probability": q.customer_reply_probability,
                               "delay": q.customer_reply_delay.to_yaml(), "max_rounds": q.max_rounds},
            "reopen": {"probability": q.reopen_probability, "delay": q.reopen_delay.to_yaml()},
        }
        out.append(d)
    c, f = model.customers, model.feed
    return {"queues": out,
            "customers": {"distribution": c.distribution, "unidentified_share": c.unidentified_share,
                          "placeholder": c.placeholder, "population": c.population, "exponent": c.exponent,
                          "busy_accounts": [{"customer_id": b.customer_id, "share": b.share} for b in c.busy_accounts]},
            "feed": {"agent_clock_skew": None if f.agent_clock_skew is None else f.agent_clock_skew.to_yaml(),
                     "missing_issue": f.missing_issue, "omit_defaults": f.omit_defaults}}
