"""A seeded, deterministic discrete-event contact-center simulation that emits contract events.

Per stream (one queue and channel, with its own pool of agents):

- Poisson arrivals with a daily curve: a piecewise-constant rate, `arrivals_per_hour` times the
  multiplier of the local hour (in the stream's time zone). The rate is constant over each
  15-minute UTC slot (every real UTC offset is a multiple of 15 minutes, so local hours start on
  slot boundaries), and exponential inter-arrival times restarted at each slot boundary make
  the arrival process an exact non-homogeneous Poisson process.
- First-come first-served queueing; the agent idle longest takes the next contact after an
  answer delay (ringing / connect time).
- Customer patience: exponential with mean `patience_seconds` (Erlang-A, M/M/c+M), or infinite
  when it is null (Erlang-C, M/M/c); an optional flow-out timer (voicemail, callback, overflow
  into another queue).
- Handle time from a configurable distribution (constant, exponential, log-normal by mean and
  sd, uniform), with an optional hold inside it, then after-contact work; or a transfer to
  another queue, which ends the leg without ACW and queues the contact again.
- Agents change state (available, busy, acw, away on breaks, offline off shift) following an
  optional staffing curve; they all go offline once the simulation has drained.
- Asynchronous channels (email, ticket, messaging, social): automated acknowledgements
  (`message.agent_replied` with `automated: true`), an agent reply at the end of every handling
  round, the customer writing again (`message.customer_replied`, the ticket is queued again),
  `contact.resolved`, and `contact.reopened` some time later. Chat gets an automated greeting
  and the agent's first reply.
- Resolution, post-contact surveys (`survey.responded`: csat 1-5, ces 1-7, nps 0-10, complaint
  1-5), QA scores, churn, and customers who come back on the same issue (same `customer_id`
  and `issue`): quick retries after an abandon, and repeats hours or days later.

The simulation runs on integer milliseconds, so the event times it writes are exactly the times
it keeps in its own records. From those records (not from `processor.core`) it computes the
ground-truth `queue_interval` figures (`Simulation.truth`), for tests and for `kpi simulate
--truth`.

Randomness: one `random.Random` per stream for arrivals, one for everything else, one for
duplicates and one for the delivery disorder, all seeded from the seed. The same seed and model
give the same bytes; duplicates and disorder change nothing in the simulated center itself.
"""
from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Iterable, Iterator, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CHANNELS = ("voice", "chat", "email", "messaging", "social", "ticket")
ASYNC_CHANNELS = ("email", "ticket", "messaging", "social")
FLOW_OUT_REASONS = ("timeout", "callback", "voicemail", "overflow")
SURVEYS = {"csat": 5, "ces": 7, "nps": 10, "complaint": 5}  # survey kind -> scale_max
SLOT_MS = 15 * 60_000  # rates and staffing are constant over 15-minute UTC slots


class ModelError(ValueError):
    """An invalid simulation model; the message names the offending key."""


# --------------------------------------------------------------------------------------- model

@dataclass(frozen=True)
class Dist:
    """A distribution of durations in seconds.

    kind: constant (a), exponential (mean a), lognormal (mean a, sd b), uniform (a to b).
    """

    kind: str
    a: float
    b: float = 0.0

    @classmethod
    def constant(cls, value: float) -> "Dist":
        return cls("constant", value)

    @classmethod
    def exponential(cls, mean: float) -> "Dist":
        return cls("exponential", mean)

    @classmethod
    def lognormal(cls, mean: float, sd: float) -> "Dist":
        return cls("lognormal", mean, sd)

    @classmethod
    def uniform(cls, low: float, high: float) -> "Dist":
        return cls("uniform", low, high)

    @property
    def mean(self) -> float:
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a

    def sample(self, rng: random.Random) -> float:
        k = self.kind
        if k == "exponential":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        if k == "lognormal":
            if self.b <= 0:
                return self.a
            sigma2 = math.log1p((self.b / self.a) ** 2)
            return rng.lognormvariate(math.log(self.a) - sigma2 / 2, math.sqrt(sigma2))
        if k == "uniform":
            return rng.uniform(self.a, self.b)
        return self.a

    def sample_ms(self, rng: random.Random) -> int:
        return max(0, round(self.sample(rng) * 1000))

    def to_yaml(self) -> Any:
        if self.kind == "constant":
            return self.a
        if self.kind == "exponential":
            return {"distribution": "exponential", "mean": self.a}
        if self.kind == "lognormal":
            return {"distribution": "lognormal", "mean": self.a, "sd": self.b}
        return {"distribution": "uniform", "min": self.a, "max": self.b}


FLAT = (1.0,) * 24


@dataclass(frozen=True)
class QueueModel:
    """One stream: a queue and channel with its own agents. Durations in seconds."""

    queue_id: str
    channel: str = "voice"
    time_zone: str = "UTC"
    arrivals_per_hour: float = 120.0
    daily_curve: tuple[float, ...] = FLAT          # arrival-rate multiplier per local hour
    agents: int = 5
    staffing_curve: tuple[float, ...] | None = None  # share of agents on shift per local hour; None = all
    handle_time: Dist = Dist.lognormal(180, 120)   # answer to wrapup_started (or transfer), hold included
    answer_delay: Dist = Dist.uniform(0.5, 3.0)    # agent free to contact.answered (ringing)
    patience_seconds: float | None = 120.0         # exponential patience mean; None = infinite
    flow_out_after_seconds: float | None = None    # routing takes the contact out after this wait
    flow_out_reason: str = "timeout"
    flow_out_to: str | None = None                 # overflow queue (same channel), queued right after
    hold_probability: float = 0.2
    hold_duration: Dist = Dist.exponential(40)
    transfer_probability: float = 0.05
    transfer_to: tuple[str, ...] | None = None     # None = any other queue with the same channel
    acw: Dist | None = Dist.exponential(30)        # None = no after-contact work
    break_every: Dist | None = Dist.exponential(7200)  # None = no breaks
    break_duration: Dist = Dist.uniform(300, 900)
    issues: tuple[str, ...] = ("billing", "order", "account", "technical", "complaint")
    resolve_probability: float = 0.8
    retry_after_abandon: float = 0.3               # the customer calls again soon after an abandon
    retry_delay: Dist = Dist.exponential(600)
    repeat_if_unresolved: float = 0.5              # comes back on the same issue later
    repeat_if_resolved: float = 0.05
    repeat_delay: Dist = Dist.lognormal(86_400, 86_400)
    survey_probability: float = 0.2
    survey_kinds: tuple[tuple[str, float], ...] = (("csat", 0.6), ("ces", 0.2), ("nps", 0.2))
    survey_delay: Dist = Dist.exponential(600)
    qa_probability: float = 0.05
    qa_delay: Dist = Dist.uniform(3600, 14_400)
    churn_probability: float = 0.01
    churn_delay: Dist = Dist.exponential(7 * 86_400)
    asynchronous: bool | None = None               # None: by channel (email, ticket, messaging, social)
    auto_reply_probability: float | None = None    # None: 1.0 on asynchronous channels, 0.8 chat, 0 voice
    reply_delay: Dist = Dist.uniform(5, 30)        # chat: answer to the agent's first reply
    customer_reply_probability: float = 0.4        # asynchronous: the customer writes again
    customer_reply_delay: Dist = Dist.exponential(3 * 3600)
    max_rounds: int = 3
    reopen_probability: float = 0.1                # asynchronous: a resolved ticket is reopened
    reopen_delay: Dist = Dist.exponential(86_400)

    @property
    def key(self) -> tuple[str, str]:
        return (self.queue_id, self.channel)

    @property
    def is_async(self) -> bool:
        return self.channel in ASYNC_CHANNELS if self.asynchronous is None else self.asynchronous

    @property
    def auto_reply(self) -> float:
        if self.auto_reply_probability is not None:
            return self.auto_reply_probability
        return 1.0 if self.is_async else 0.8 if self.channel == "chat" else 0.0


@dataclass(frozen=True)
class BusyAccount:
    """A business account (or a frequent caller): this share of all new contacts is theirs."""

    customer_id: str
    share: float


@dataclass(frozen=True)
class CustomerModel:
    """Who a new contact comes from; a retry or a repeat keeps its contact's customer.

    Each new contact is, in turn: unidentified (the `placeholder` id) with `unidentified_share`, a
    busy account's with that account's share, else an identified customer: with `zipf`, one of
    `population` customers, rank k chosen with weight k^-exponent (a heavy tail: a few customers
    with hundreds of contacts, most with one); with `uniform`, a new customer every time (the
    simulator before issue 19).
    """

    distribution: str = "zipf"            # zipf | uniform
    unidentified_share: float = 0.5
    placeholder: str = "0"
    population: int = 200_000
    exponent: float = 0.9
    busy_accounts: tuple[BusyAccount, ...] = (BusyAccount("biz-1", 0.05),)

    @property
    def realistic(self) -> bool:
        return self.distribution != "uniform" or self.unidentified_share > 0 or bool(self.busy_accounts)


@dataclass(frozen=True)
class FeedModel:
    """How the sources stamp and fill their events (none of it changes the simulated center).

    agent_clock_skew: each agent's presence source (desktop, WFM) stamps `agent.state_changed`
    this many seconds early (drawn once per agent), so an agent shows busy 1-2 s before the
    ACD's `contact.answered`. missing_issue: share of `contact.created` without `issue`.
    omit_defaults: `message.agent_replied` without `automated` when it is false.
    """

    agent_clock_skew: Dist | None = Dist.uniform(1.0, 2.0)
    missing_issue: float = 0.1
    omit_defaults: bool = True

    @property
    def realistic(self) -> bool:
        return self.agent_clock_skew is not None or self.missing_issue > 0 or self.omit_defaults


# The simulator as it was before issue 19: a new customer per arrival, every field, one clock.
UNIFORM_CUSTOMERS = CustomerModel(distribution="uniform", unidentified_share=0.0, busy_accounts=())
PLAIN_FEED = FeedModel(agent_clock_skew=None, missing_issue=0.0, omit_defaults=False)
PROFILES = ("realistic", "uniform")


@dataclass(frozen=True)
class Model:
    queues: tuple[QueueModel, ...]
    customers: CustomerModel = CustomerModel()
    feed: FeedModel = FeedModel()

    def __post_init__(self) -> None:
        _validate_model(self)


def with_profile(model: Model, profile: str) -> Model:
    """`realistic`: the model as given; `uniform`: its center with a new customer per arrival, every
    field and one clock (the same bytes as the simulator before issue 19, for a seed and a model)."""
    if profile == "realistic":
        return model
    if profile == "uniform":
        return Model(model.queues, UNIFORM_CUSTOMERS, PLAIN_FEED)
    raise ModelError(f"profile: must be one of {', '.join(PROFILES)}")


def _validate_model(model: Model) -> None:
    if not model.queues:
        raise ModelError("queues: at least one queue is needed")
    keys = [q.key for q in model.queues]
    for i, q in enumerate(model.queues):
        where = f"queues[{i}]"
        if keys.index(q.key) != i:
            raise ModelError(f"{where}: queue {q.queue_id!r} with channel {q.channel} is given twice")
        if q.channel not in CHANNELS:
            raise ModelError(f"{where}.channel: must be one of {', '.join(CHANNELS)}")
        if q.flow_out_reason not in FLOW_OUT_REASONS:
            raise ModelError(f"{where}.flow_out.reason: must be one of {', '.join(FLOW_OUT_REASONS)}")
        if q.flow_out_to is not None and (q.flow_out_to, q.channel) not in keys:
            raise ModelError(f"{where}.flow_out.to_queue: no queue {q.flow_out_to!r} with channel {q.channel}")
        for target in q.transfer_to or ():
            if (target, q.channel) not in keys:
                raise ModelError(f"{where}.transfer.to: no queue {target!r} with channel {q.channel}")
        if q.survey_probability > 0 and not q.survey_kinds and "complaint" not in q.issues:
            raise ModelError(f"{where}.survey.kinds: surveys need at least one kind")
    c = model.customers
    if c.distribution not in ("zipf", "uniform"):
        raise ModelError("customers.distribution: must be zipf or uniform")
    if not isinstance(c.placeholder, str):
        raise ModelError("customers.placeholder: must be a string")
    if not 1 <= c.population <= 10_000_000:
        raise ModelError("customers.population: must be 1 to 10,000,000")
    if not c.exponent > 0:
        raise ModelError("customers.exponent: must be > 0")
    ids = [b.customer_id for b in c.busy_accounts]
    if len(set(ids)) != len(ids) or c.placeholder in ids or not all(ids):
        raise ModelError("customers.busy_accounts: each needs its own non-empty customer_id, not the placeholder")
    if c.unidentified_share + sum(b.share for b in c.busy_accounts) > 1 + 1e-9:
        raise ModelError("customers: unidentified_share plus the busy accounts' shares must be at most 1")


# A business-day shape (local time): quiet nights, morning and afternoon peaks.
DAY_CURVE = (0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.4, 0.6, 0.9, 1.1, 1.2, 1.15,
             1.0, 1.0, 1.15, 1.15, 1.05, 0.9, 0.7, 0.5, 0.5, 0.45, 0.4, 0.35)
# Staffing follows it (share of the agents on shift), a little ahead of the demand at night.
STAFF_CURVE = (0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.7, 0.9, 1.0, 1.0, 1.0,
               0.9, 0.9, 1.0, 1.0, 1.0, 0.9, 0.7, 0.6, 0.6, 0.5, 0.5, 0.45)

# The sample contact center: sales (voice) and support (voice, chat).
DEFAULT_MODEL = Model((
    QueueModel("sales", "voice", "Europe/Paris", 150, DAY_CURVE, 14, STAFF_CURVE,
               handle_time=Dist.lognormal(200, 130), patience_seconds=90,
               flow_out_after_seconds=120, flow_out_reason="voicemail",
               issues=("quote", "order", "pricing", "complaint")),
    QueueModel("support", "voice", "America/New_York", 220, DAY_CURVE, 22, STAFF_CURVE,
               handle_time=Dist.lognormal(240, 160), patience_seconds=150,
               issues=("billing", "technical", "account", "delivery", "complaint")),
    QueueModel("support", "chat", "America/New_York", 90, DAY_CURVE, 12, STAFF_CURVE,
               handle_time=Dist.lognormal(300, 200), patience_seconds=240, hold_probability=0.0,
               auto_reply_probability=0.8,
               issues=("billing", "technical", "account", "delivery", "complaint")),
))


# --------------------------------------------------------------------------------------- YAML

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
    _parse_entry(defaults, "defaults", partial=True)  # report bad defaults once, under their own name
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ModelError(f"queues[{i}]: must be a mapping")
        out.append(_parse_entry({**defaults, **entry}, f"queues[{i}]"))
    return Model(tuple(out), _parse_customers(data.get("customers")), _parse_feed(data.get("feed")))


_CUSTOMER_KEYS = {"distribution", "unidentified_share", "placeholder", "population", "exponent", "busy_accounts"}


def _parse_customers(v: Any) -> CustomerModel:
    """The `customers` mapping; each key left out keeps the built-in default (`uniform`: the old simulator)."""
    if v is None:
        return CustomerModel()
    if v == "uniform":
        return UNIFORM_CUSTOMERS
    if not isinstance(v, dict):
        raise ModelError("customers: a mapping (or `uniform`)")
    extra = set(v) - _CUSTOMER_KEYS
    if extra:
        raise ModelError(f"customers: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    kw: dict[str, Any] = {}
    if "distribution" in v:
        kw["distribution"] = v["distribution"]
    if "unidentified_share" in v:
        kw["unidentified_share"] = _prob(v["unidentified_share"], "customers.unidentified_share")
    if "placeholder" in v:
        if not isinstance(v["placeholder"], (str, int)) or isinstance(v["placeholder"], bool):
            raise ModelError("customers.placeholder: a customer id (string)")
        kw["placeholder"] = str(v["placeholder"])
    if "population" in v:
        n = v["population"]
        if isinstance(n, bool) or not isinstance(n, int):
            raise ModelError("customers.population: an integer")
        kw["population"] = n
    if "exponent" in v:
        kw["exponent"] = _num(v["exponent"], "customers.exponent", strict=True)
    if "busy_accounts" in v:
        accounts = v["busy_accounts"] or []
        if not isinstance(accounts, list):
            raise ModelError("customers.busy_accounts: a list of {customer_id, share}")
        out = []
        for i, a in enumerate(accounts):
            where = f"customers.busy_accounts[{i}]"
            if not isinstance(a, dict) or set(a) != {"customer_id", "share"}:
                raise ModelError(f"{where}: a mapping with exactly customer_id and share")
            if not isinstance(a["customer_id"], str):
                raise ModelError(f"{where}.customer_id: a string")
            out.append(BusyAccount(a["customer_id"], _prob(a["share"], f"{where}.share")))
        kw["busy_accounts"] = tuple(out)
    return CustomerModel(**kw)


def _parse_feed(v: Any) -> FeedModel:
    """The `feed` mapping; each key left out keeps the built-in default (`plain`: one clock, every field)."""
    if v is None:
        return FeedModel()
    if v == "plain":
        return PLAIN_FEED
    if not isinstance(v, dict):
        raise ModelError("feed: a mapping (or `plain`)")
    extra = set(v) - {"agent_clock_skew", "missing_issue", "omit_defaults"}
    if extra:
        raise ModelError(f"feed: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    kw: dict[str, Any] = {}
    if "agent_clock_skew" in v:
        kw["agent_clock_skew"] = None if v["agent_clock_skew"] is None else _dist(v["agent_clock_skew"],
                                                                                  "feed.agent_clock_skew")
    if "missing_issue" in v:
        kw["missing_issue"] = _prob(v["missing_issue"], "feed.missing_issue")
    if "omit_defaults" in v:
        if not isinstance(v["omit_defaults"], bool):
            raise ModelError("feed.omit_defaults: true or false")
        kw["omit_defaults"] = v["omit_defaults"]
    return FeedModel(**kw)


def _num(v: Any, where: str, low: float = 0.0, high: float = math.inf, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ModelError(f"{where}: must be a number")
    if v < low or v > high or (strict and v == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ModelError(f"{where}: must be {bound}" + (f" and <= {high:g}" if high != math.inf else ""))
    return float(v)


def _prob(v: Any, where: str) -> float:
    return _num(v, where, 0.0, 1.0)


def _dist(v: Any, where: str) -> Dist:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Dist.constant(_num(v, where))
    if not isinstance(v, dict):
        raise ModelError(f"{where}: a number of seconds or "
                         "{distribution: exponential|lognormal|uniform|constant, ...}")
    kind = v.get("distribution", "constant" if "value" in v else None)
    allowed = {"exponential": {"mean"}, "lognormal": {"mean", "sd"}, "uniform": {"min", "max"},
               "constant": {"value"}}
    if kind not in allowed:
        raise ModelError(f"{where}.distribution: must be one of exponential, lognormal, uniform, constant")
    extra = set(v) - allowed[kind] - {"distribution"}
    missing = allowed[kind] - set(v)
    if extra or missing:
        raise ModelError(f"{where}: a {kind} distribution takes exactly {', '.join(sorted(allowed[kind]))}")
    if kind == "exponential":
        return Dist.exponential(_num(v["mean"], f"{where}.mean", strict=True))
    if kind == "lognormal":
        return Dist.lognormal(_num(v["mean"], f"{where}.mean", strict=True), _num(v["sd"], f"{where}.sd"))
    if kind == "uniform":
        low, high = _num(v["min"], f"{where}.min"), _num(v["max"], f"{where}.max")
        if high < low:
            raise ModelError(f"{where}: max must be >= min")
        return Dist.uniform(low, high)
    return Dist.constant(_num(v["value"], f"{where}.value"))


def _curve(v: Any, where: str) -> tuple[float, ...]:
    """24 multipliers: a list of 24 numbers, or {hour: multiplier} held until the next hour given."""
    if isinstance(v, list):
        if len(v) != 24:
            raise ModelError(f"{where}: a list needs 24 values (hours 0-23), got {len(v)}")
        return tuple(_num(x, f"{where}[{h}]") for h, x in enumerate(v))
    if isinstance(v, dict) and v:
        points = {}
        for h, x in v.items():
            if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 23:
                raise ModelError(f"{where}: keys must be hours 0-23, got {h!r}")
            points[h] = _num(x, f"{where}[{h}]")
        hours = sorted(points)
        value = points[hours[-1]]  # before the first hour given, the last one still holds (wraps midnight)
        out = []
        for h in range(24):
            value = points.get(h, value)
            out.append(value)
        return tuple(out)
    raise ModelError(f"{where}: a list of 24 multipliers or a mapping {{hour: multiplier}}")


def _group(entry: dict, key: str, where: str, allowed: set[str]) -> dict | None:
    v = entry.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ModelError(f"{where}.{key}: must be a mapping (or null)")
    extra = set(v) - allowed
    if extra:
        raise ModelError(f"{where}.{key}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    return v


_ENTRY_KEYS = {
    "queue", "channel", "time_zone", "arrivals_per_hour", "daily_curve", "agents", "staffing_curve",
    "handle_time", "answer_delay", "patience_seconds", "flow_out", "hold", "transfer", "acw", "breaks",
    "issues", "resolve_probability", "repeat", "survey", "qa", "churn", "asynchronous",
    "auto_reply_probability", "reply_delay", "customer_reply", "reopen",
}


def _parse_entry(e: dict, where: str, partial: bool = False) -> QueueModel | None:
    unknown = set(e) - _ENTRY_KEYS
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    kw: dict[str, Any] = {}
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
    if "arrivals_per_hour" in e:
        kw["arrivals_per_hour"] = _num(e["arrivals_per_hour"], f"{where}.arrivals_per_hour")
    if "daily_curve" in e:
        kw["daily_curve"] = FLAT if e["daily_curve"] is None else _curve(e["daily_curve"], f"{where}.daily_curve")
    if "agents" in e:
        v = e["agents"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ModelError(f"{where}.agents: must be an integer >= 0")
        kw["agents"] = v
    if "staffing_curve" in e:
        v = e["staffing_curve"]
        kw["staffing_curve"] = None if v is None else _curve(v, f"{where}.staffing_curve")
        if kw["staffing_curve"] and max(kw["staffing_curve"]) > 1:
            raise ModelError(f"{where}.staffing_curve: shares of the agents, at most 1")
    for key in ("handle_time", "answer_delay", "reply_delay"):
        if key in e:
            kw[key] = _dist(e[key], f"{where}.{key}")
    if "patience_seconds" in e:
        v = e["patience_seconds"]
        kw["patience_seconds"] = None if v is None else _num(v, f"{where}.patience_seconds", strict=True)
    if "flow_out" in e:
        g = _group(e, "flow_out", where, {"after_seconds", "reason", "to_queue"})
        if g is None:
            kw["flow_out_after_seconds"] = None
        else:
            if "after_seconds" not in g:
                raise ModelError(f"{where}.flow_out.after_seconds: required")
            kw["flow_out_after_seconds"] = _num(g["after_seconds"], f"{where}.flow_out.after_seconds")
            reason = g.get("reason", "overflow" if g.get("to_queue") else "timeout")
            if reason not in FLOW_OUT_REASONS:
                raise ModelError(f"{where}.flow_out.reason: must be one of {', '.join(FLOW_OUT_REASONS)}")
            kw["flow_out_reason"] = reason
            kw["flow_out_to"] = g.get("to_queue")
    if "hold" in e:
        g = _group(e, "hold", where, {"probability", "duration"}) or {"probability": 0}
        kw["hold_probability"] = _prob(g.get("probability", 0), f"{where}.hold.probability")
        if "duration" in g:
            kw["hold_duration"] = _dist(g["duration"], f"{where}.hold.duration")
    if "transfer" in e:
        g = _group(e, "transfer", where, {"probability", "to"}) or {"probability": 0}
        kw["transfer_probability"] = _prob(g.get("probability", 0), f"{where}.transfer.probability")
        to = g.get("to")
        if to is not None:
            if isinstance(to, str):
                to = [to]
            if not isinstance(to, list) or not all(isinstance(t, str) and t for t in to):
                raise ModelError(f"{where}.transfer.to: a queue id or a list of queue ids")
            kw["transfer_to"] = tuple(to)
    if "acw" in e:
        kw["acw"] = None if e["acw"] is None else _dist(e["acw"], f"{where}.acw")
    if "breaks" in e:
        g = _group(e, "breaks", where, {"every", "duration"})
        if g is None:
            kw["break_every"] = None
        else:
            if "every" not in g:
                raise ModelError(f"{where}.breaks.every: required")
            kw["break_every"] = _dist(g["every"], f"{where}.breaks.every")
            if "duration" in g:
                kw["break_duration"] = _dist(g["duration"], f"{where}.breaks.duration")
    if "issues" in e:
        v = e["issues"]
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            raise ModelError(f"{where}.issues: a non-empty list of issue names")
        kw["issues"] = tuple(v)
    for key in ("resolve_probability",):
        if key in e:
            kw[key] = _prob(e[key], f"{where}.{key}")
    if "auto_reply_probability" in e:
        v = e["auto_reply_probability"]
        kw["auto_reply_probability"] = None if v is None else _prob(v, f"{where}.auto_reply_probability")
    if "asynchronous" in e:
        v = e["asynchronous"]
        if v is not None and not isinstance(v, bool):
            raise ModelError(f"{where}.asynchronous: true, false or null (by channel)")
        kw["asynchronous"] = v
    g = _group(e, "repeat", where, {"after_abandon", "retry_delay", "if_unresolved", "if_resolved", "delay"})
    if "repeat" in e and g is None:
        g = {"after_abandon": 0, "if_unresolved": 0, "if_resolved": 0}
    if g is not None:
        for k, name in (("after_abandon", "retry_after_abandon"), ("if_unresolved", "repeat_if_unresolved"),
                        ("if_resolved", "repeat_if_resolved")):
            if k in g:
                kw[name] = _prob(g[k], f"{where}.repeat.{k}")
        if "retry_delay" in g:
            kw["retry_delay"] = _dist(g["retry_delay"], f"{where}.repeat.retry_delay")
        if "delay" in g:
            kw["repeat_delay"] = _dist(g["delay"], f"{where}.repeat.delay")
    g = _group(e, "survey", where, {"probability", "kinds", "delay"})
    if "survey" in e and g is None:
        g = {"probability": 0}
    if g is not None:
        if "probability" in g:
            kw["survey_probability"] = _prob(g["probability"], f"{where}.survey.probability")
        if "kinds" in g:
            kinds = g["kinds"]
            if not isinstance(kinds, dict) or not kinds or not set(kinds) <= set(SURVEYS) - {"complaint"}:
                raise ModelError(f"{where}.survey.kinds: a mapping of csat / ces / nps to weights "
                                 "(complaint surveys follow contacts on the issue `complaint`)")
            kw["survey_kinds"] = tuple((k, _num(w, f"{where}.survey.kinds.{k}")) for k, w in kinds.items())
        if "delay" in g:
            kw["survey_delay"] = _dist(g["delay"], f"{where}.survey.delay")
    for key, prob_name, delay_name, extra in (("qa", "qa_probability", "qa_delay", set()),
                                              ("churn", "churn_probability", "churn_delay", set()),
                                              ("reopen", "reopen_probability", "reopen_delay", set()),
                                              ("customer_reply", "customer_reply_probability",
                                               "customer_reply_delay", {"max_rounds"})):
        g = _group(e, key, where, {"probability", "delay"} | extra)
        if key in e and g is None:
            g = {"probability": 0}
        if g is None:
            continue
        if "probability" in g:
            kw[prob_name] = _prob(g["probability"], f"{where}.{key}.probability")
        if "delay" in g:
            kw[delay_name] = _dist(g["delay"], f"{where}.{key}.delay")
        if "max_rounds" in g:
            v = g["max_rounds"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ModelError(f"{where}.{key}.max_rounds: an integer >= 1")
            kw["max_rounds"] = v
    if partial:
        return None
    return QueueModel(**kw)


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


# --------------------------------------------------------------------------------------- time

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_ms(ts_ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC with milliseconds and 'Z' (the simulator's own formatter)."""
    dt = _EPOCH + timedelta(milliseconds=ts_ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


@lru_cache(maxsize=4)
def _zipf_cumulative(population: int, exponent: float) -> list[float]:
    """Cumulative weights k^-exponent of ranks 1..population (a customer is drawn by bisection)."""
    return list(itertools.accumulate(k ** -exponent for k in range(1, population + 1)))


@lru_cache(maxsize=4096)
def _local_hour(slot_ms: int, tz_name: str) -> int:
    return datetime.fromtimestamp(slot_ms / 1000, ZoneInfo(tz_name)).hour


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        n, r = divmod(n, 36)
        s = digits[r] + s
        if not n:
            return s


# --------------------------------------------------------------------------------------- runtime

class _Agent:
    __slots__ = ("agent_id", "stream", "state", "shown", "on_shift", "next_break_ms", "idle_since", "skew_ms")

    def __init__(self, agent_id: str, stream: "_Stream") -> None:
        self.agent_id = agent_id
        self.stream = stream
        self.state = "offline"          # what the agent does; "reserved" while ringing (never published)
        self.shown = ""                 # the state last published (nothing yet)
        self.on_shift = False
        self.next_break_ms: int | None = None
        self.idle_since = 0
        self.skew_ms = 0                # how early this agent's presence source stamps its events


class _Stream:
    __slots__ = ("m", "key", "agents", "free", "waiting", "rng", "t_arrival", "transfer_targets",
                 "queues_field")

    def __init__(self, m: QueueModel, seed: int) -> None:
        self.m = m
        self.key = m.key
        self.agents = [_Agent(f"{m.queue_id}-{m.channel}-a{i}", self) for i in range(m.agents)]
        # Both lazily cleaned: an entry is live only while its token still matches.
        self.free: deque[tuple[_Agent, int]] = deque()        # (agent, idle_since): longest idle first
        self.waiting: deque[tuple[_Contact, int]] = deque()   # (contact, segment number): FCFS
        self.rng = random.Random(f"{seed}:arrivals:{m.queue_id}:{m.channel}")
        self.t_arrival = 0.0  # the arrival process's own clock, float milliseconds (slot bounds exact)
        self.transfer_targets: list[_Stream] = []
        self.queues_field = [m.queue_id]


class _Contact:
    __slots__ = ("cid", "channel", "customer", "issue", "origin", "stream", "seg", "seg_start", "waiting", "agent",
                 "answered_ms", "hold_ms", "talk_end_ms", "transfer_to", "waited_ms", "round", "resolved",
                 "reopened")

    def __init__(self, cid: str, channel: str, customer: str, issue: str, origin: "_Stream") -> None:
        self.cid = cid
        self.channel = channel
        self.customer = customer
        self.issue = issue
        self.origin = origin                # where the customer came in: retries and repeats go there
        self.stream: _Stream | None = None
        self.seg = 0
        self.seg_start = 0
        self.waiting = False
        self.agent: _Agent | None = None
        self.answered_ms = 0
        self.hold_ms = 0
        self.talk_end_ms = 0
        self.transfer_to: _Stream | None = None
        self.waited_ms = 0
        self.round = 1
        self.resolved = False
        self.reopened = False


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    queue_id: str
    channel: str
    start_ms: int
    end_ms: int
    outcome: str  # answered, abandoned, flowed_out


@dataclass(frozen=True, slots=True)
class LegRecord:
    queue_id: str
    channel: str
    end_ms: int
    talk_ms: int
    hold_ms: int
    acw_ms: int


class Simulation:
    """The simulated contact center. `events()` yields (event time in seconds, event dict) in time order.

    `models`: a Model, or a sequence of QueueModel. `start` is epoch seconds; contacts arrive during
    `duration_seconds`; contacts in progress then are finished (the simulation drains), then every
    agent goes offline. Follow-ups later than the end (surveys, replies, repeats) are not emitted.
    `profile`: `realistic` (the model's customers and feed) or `uniform` (see `with_profile`).
    """

    def __init__(self, models: Model | Sequence[QueueModel] = DEFAULT_MODEL, seed: int = 7,
                 start: float = 1_795_424_400.0, duration_seconds: float = 3600.0,
                 duplicate_probability: float = 0.0, disorder_seconds: float = 0.0, profile: str = "realistic"):
        self.model = with_profile(models if isinstance(models, Model) else Model(tuple(models)), profile)
        self.seed = seed
        self.start_ms = round(start * 1000)
        self.end_ms = self.start_ms + round(duration_seconds * 1000)
        self.dup_p = duplicate_probability
        self.disorder_ms = round(disorder_seconds * 1000)
        self.rng = random.Random(f"{seed}:behaviour")
        self.tag = f"{seed}.{_base36(self.start_ms // 1000)}"
        self.streams = {m.key: _Stream(m, seed) for m in self.model.queues}
        for s in self.streams.values():
            m = s.m
            names = m.transfer_to if m.transfer_to is not None else [
                k[0] for k in self.streams if k != m.key and k[1] == m.channel]
            s.transfer_targets = [self.streams[(n, m.channel)] for n in names]
        # Who calls, and how the sources stamp and fill events: random streams of their own, so the
        # simulated center (arrivals, queues, agents) is the same under every customer profile.
        self.customers = self.model.customers
        self.feed = self.model.feed
        self._cust_rng = random.Random(f"{seed}:customers")
        self._feed_rng = random.Random(f"{seed}:feed")
        self._zipf = (_zipf_cumulative(self.customers.population, self.customers.exponent)
                      if self.customers.distribution == "zipf" else None)
        self._placeholder = self.customers.placeholder if self.customers.unidentified_share > 0 else None
        if self.feed.agent_clock_skew is not None:
            for s in self.streams.values():
                for a in s.agents:
                    a.skew_ms = self.feed.agent_clock_skew.sample_ms(self._feed_rng)
        self.segments: list[SegmentRecord] = []
        self.legs: list[LegRecord] = []
        self.contacts: dict[str, dict] = {}   # contact id -> customer, issue, repeat_of, resolved...
        self._heap: list = []
        self._seq = 0
        self._n_event = 0
        self._n_contact = 0
        self._n_customer = 0
        self._out: list[tuple[int, dict]] = []
        self._done = False

    # -- public ------------------------------------------------------------------------
    def events(self) -> Iterator[tuple[float, dict]]:
        """Every event once, in the order the center emits them (no duplicates, no disorder), with its time
        in seconds: event-time order, but for the presence events a skewed agent clock stamps early."""
        self.run()
        return ((t / 1000, ev) for t, ev in self._out)

    def run(self) -> "Simulation":
        if not self._done:
            self._simulate()
            self._done = True
        return self

    def delivered(self, in_time_order: bool = False) -> list[dict]:
        """The events as a feed delivers them: with duplicates (each event sent again with probability
        `duplicate_probability`) and, with `disorder_seconds` > 0, each copy delayed by a uniform
        [0, disorder) and delivered in order of its delayed time (out of order by less than that).
        in_time_order: sorted (stably) by event time, which only moves skewed presence events."""
        self.run()
        dup_rng = random.Random(f"{self.seed}:duplicates")
        copies: list[dict] = []
        times: list[int] = []
        for t, ev in self._out:
            copies.append(ev)
            times.append(t)
            if self.dup_p and dup_rng.random() < self.dup_p:
                copies.append(dict(ev))
                times.append(t)
        if self.disorder_ms <= 0:
            if in_time_order and self.feed.agent_clock_skew is not None:
                return [copies[i] for i in sorted(range(len(copies)), key=times.__getitem__)]
            return copies
        rng = random.Random(f"{self.seed}:disorder")
        keyed = sorted(range(len(copies)), key=lambda i: (times[i] + rng.randrange(self.disorder_ms), i))
        return [copies[i] for i in keyed]

    def truth(self, settings) -> list[dict]:
        """Ground-truth `queue_interval` records (without `version`) from the simulator's own records.

        `settings` supplies the interval length and each queue's T, S and target (an EngineSettings:
        `interval_ms` and `queue(id)` with `threshold_seconds`, `short_abandon_seconds`,
        `service_level_target`). Intervals are aligned on UTC multiples of the interval length; a
        segment counts in the interval holding its end, a leg in the one holding its end.
        """
        self.run()
        return truth_records(self.segments, self.legs, settings)

    # -- machinery ---------------------------------------------------------------------
    def _at(self, t: int, fn, *args) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, args))

    def _emit(self, t: int, type_: str, **fields) -> None:
        self._n_event += 1
        ev = {"event_id": f"{self.tag}-{self._n_event:09d}", "type": type_, "ts": iso_ms(t)}
        ev.update(fields)
        self._out.append((t, ev))

    def _agent_state(self, t: int, a: _Agent, state: str) -> None:
        a.state = state
        if a.shown != state:
            a.shown = state
            self._emit(t - a.skew_ms, "agent.state_changed", agent_id=a.agent_id, state=state, queues=a.stream.queues_field)

    def _later(self, t: int, delay: Dist) -> int | None:
        """A follow-up time, or None when it falls after the end of the simulation."""
        at = t + delay.sample_ms(self.rng)
        return at if at <= self.end_ms else None

    def _simulate(self) -> None:
        start = self.start_ms
        for s in self.streams.values():
            s.t_arrival = float(start)
            self._staff(start, s)
            for a in s.agents:  # everyone's presence is known from the start
                if not a.on_shift:
                    self._agent_state(start, a, "offline")
            nxt = self._next_arrival(s)
            if nxt is not None:
                self._at(nxt, self._arrive, s)
        t = start
        heap = self._heap
        while heap:
            t, _, fn, args = heapq.heappop(heap)
            fn(t, *args)
        final = max(t, self.end_ms)
        for s in self.streams.values():
            for a in s.agents:
                self._agent_state(final, a, "offline")

    # -- arrivals ----------------------------------------------------------------------
    def _rate(self, s: _Stream, slot_ms: int) -> float:
        """Arrivals per second during the 15-minute UTC slot starting at slot_ms (its local hour's rate)."""
        m = s.m
        return m.arrivals_per_hour * m.daily_curve[_local_hour(slot_ms, m.time_zone)] / 3600

    def _next_arrival(self, s: _Stream) -> int | None:
        t = s.t_arrival
        end = self.end_ms
        while t < end:
            slot = int(t) // SLOT_MS * SLOT_MS
            slot_end = float(slot + SLOT_MS)
            rate = self._rate(s, slot) / 1000  # per millisecond
            if rate > 0:
                nxt = t + s.rng.expovariate(rate)
                if nxt < slot_end:
                    s.t_arrival = nxt
                    at = round(nxt)
                    return at if at < end else None
            t = slot_end  # memoryless: restart the clock at the slot boundary with the new rate
        s.t_arrival = t
        return None

    def _arrive(self, t: int, s: _Stream) -> None:
        nxt = self._next_arrival(s)
        if nxt is not None:
            self._at(nxt, self._arrive, s)
        customer = self._customer()
        issue = s.m.issues[self.rng.randrange(len(s.m.issues))]
        self._new_contact(t, s, customer, issue, None)

    def _customer(self) -> str:
        """The customer of a new contact (see CustomerModel)."""
        cm = self.customers
        if cm.unidentified_share or cm.busy_accounts:
            u = self._cust_rng.random()
            if u < cm.unidentified_share:
                return cm.placeholder
            u -= cm.unidentified_share
            for b in cm.busy_accounts:
                if u < b.share:
                    return b.customer_id
                u -= b.share
        if self._zipf is not None:
            cum = self._zipf
            return f"cu-{bisect.bisect_right(cum, self._cust_rng.random() * cum[-1]) + 1}"
        self._n_customer += 1
        return f"{self.tag}-u{self._n_customer}"

    def _repeat(self, t: int, s: _Stream, customer: str, issue: str, first: str) -> None:
        if t < self.end_ms:
            self._new_contact(t, s, customer, issue, first)

    def _new_contact(self, t: int, s: _Stream, customer: str, issue: str, repeat_of: str | None) -> None:
        self._n_contact += 1
        c = _Contact(f"{self.tag}-c{self._n_contact}", s.m.channel, customer, issue, s)
        self.contacts[c.cid] = {"customer_id": customer, "issue": issue, "queue_id": s.m.queue_id,
                                "channel": c.channel, "created_ms": t, "repeat_of": repeat_of,
                                "resolved": False, "reopened": False}
        if self.feed.missing_issue and self._feed_rng.random() < self.feed.missing_issue:
            self._emit(t, "contact.created", contact_id=c.cid, channel=c.channel, customer_id=customer)
        else:
            self._emit(t, "contact.created", contact_id=c.cid, channel=c.channel, customer_id=customer, issue=issue)
        m = s.m
        if m.auto_reply and self.rng.random() < m.auto_reply:
            self._at(t + 1000 + self.rng.randrange(4000), self._auto_reply, c, s)
        self._enqueue(t, c, s)

    def _auto_reply(self, t: int, c: _Contact, s: _Stream) -> None:
        self._emit(t, "message.agent_replied", contact_id=c.cid, agent_id=f"{s.m.queue_id}-bot", automated=True)

    # -- queueing ----------------------------------------------------------------------
    def _enqueue(self, t: int, c: _Contact, s: _Stream) -> None:
        c.stream = s
        c.seg += 1
        c.seg_start = t
        self._emit(t, "contact.queued", contact_id=c.cid, queue_id=s.m.queue_id)
        a = self._take_free(s)
        if a is not None:
            self._assign(t, c, a)
            return
        c.waiting = True
        s.waiting.append((c, c.seg))
        m = s.m
        if m.patience_seconds is not None:
            self._at(t + round(self.rng.expovariate(1.0 / m.patience_seconds) * 1000), self._give_up, c, c.seg)
        if m.flow_out_after_seconds is not None:
            self._at(t + round(m.flow_out_after_seconds * 1000), self._flow_out, c, c.seg)

    def _take_free(self, s: _Stream) -> _Agent | None:
        free = s.free
        while free:
            a, since = free.popleft()
            if a.state == "available" and a.on_shift and a.idle_since == since:
                return a
        return None

    def _next_waiting(self, s: _Stream) -> _Contact | None:
        w = s.waiting
        while w:
            c, seg = w.popleft()
            if c.waiting and c.seg == seg and c.stream is s:
                return c
        return None

    def _end_segment(self, t: int, c: _Contact, outcome: str) -> None:
        s = c.stream
        c.waited_ms += t - c.seg_start
        self.segments.append(SegmentRecord(s.m.queue_id, c.channel, c.seg_start, t, outcome))

    def _give_up(self, t: int, c: _Contact, seg: int) -> None:
        if not c.waiting or c.seg != seg:
            return
        c.waiting = False
        s = c.stream
        self._end_segment(t, c, "abandoned")
        self._emit(t, "contact.abandoned", contact_id=c.cid, queue_id=s.m.queue_id)
        self._unserved(t, c, s)

    def _flow_out(self, t: int, c: _Contact, seg: int) -> None:
        if not c.waiting or c.seg != seg:
            return
        c.waiting = False
        s = c.stream
        m = s.m
        self._end_segment(t, c, "flowed_out")
        self._emit(t, "contact.flowed_out", contact_id=c.cid, queue_id=m.queue_id, reason=m.flow_out_reason)
        if m.flow_out_to is not None:
            self._at(t + 500, self._enqueue, c, self.streams[(m.flow_out_to, c.channel)])
        else:
            self._unserved(t, c, s)

    def _unserved(self, t: int, c: _Contact, s: _Stream) -> None:
        """The customer left unserved: maybe tries again soon, on the same issue."""
        m = s.m
        if m.retry_after_abandon and self.rng.random() < m.retry_after_abandon:
            at = self._later(t, m.retry_delay)
            if at is not None:
                self._at(at, self._repeat, c.origin, c.customer, c.issue, self._first_of(c))

    def _first_of(self, c: _Contact) -> str:
        info = self.contacts[c.cid]
        return info["repeat_of"] or c.cid

    # -- service -----------------------------------------------------------------------
    def _assign(self, t: int, c: _Contact, a: _Agent) -> None:
        c.waiting = False
        c.agent = a
        a.state = "reserved"  # not published: it shows busy once the contact is answered
        self._at(t + c.stream.m.answer_delay.sample_ms(self.rng), self._answer, c, a)

    def _answer(self, t: int, c: _Contact, a: _Agent) -> None:
        s = c.stream
        m = s.m
        rng = self.rng
        self._end_segment(t, c, "answered")
        self._emit(t, "contact.answered", contact_id=c.cid, queue_id=m.queue_id, agent_id=a.agent_id)
        self._agent_state(t, a, "busy")
        c.answered_ms = t
        c.hold_ms = 0
        talk = m.handle_time.sample_ms(rng)
        end = t + talk
        c.talk_end_ms = end
        if m.hold_probability and rng.random() < m.hold_probability:
            length = min(m.hold_duration.sample_ms(rng), talk // 2)
            if length >= 1000:
                hold_start = t + 1 + rng.randrange(talk - length - 1)
                c.hold_ms = length
                self._at(hold_start, self._emit_for, "contact.hold_started", c.cid, a.agent_id)
                self._at(hold_start + length, self._emit_for, "contact.hold_ended", c.cid, a.agent_id)
        if c.channel != "voice" and not m.is_async:  # chat: the agent's first reply
            self._at(t + min(m.reply_delay.sample_ms(rng), talk // 2), self._agent_reply, c.cid, a.agent_id)
        c.transfer_to = None
        if s.transfer_targets and m.transfer_probability and rng.random() < m.transfer_probability:
            c.transfer_to = s.transfer_targets[rng.randrange(len(s.transfer_targets))]
        self._at(end, self._talk_end, c, a)

    def _agent_reply(self, t: int, cid: str, agent_id: str) -> None:
        if self.feed.omit_defaults:  # `automated` is optional, absent means false
            self._emit(t, "message.agent_replied", contact_id=cid, agent_id=agent_id)
        else:
            self._emit(t, "message.agent_replied", contact_id=cid, agent_id=agent_id, automated=False)

    def _emit_for(self, t: int, type_: str, cid: str, agent_id: str) -> None:
        self._emit(t, type_, contact_id=cid, agent_id=agent_id)

    def _talk_end(self, t: int, c: _Contact, a: _Agent) -> None:
        s = c.stream
        m = s.m
        talk = t - c.answered_ms - c.hold_ms
        if c.transfer_to is not None:
            self._emit(t, "contact.transferred", contact_id=c.cid, agent_id=a.agent_id,
                       to_queue_id=c.transfer_to.m.queue_id)
            self.legs.append(LegRecord(m.queue_id, c.channel, t, talk, c.hold_ms, 0))
            self._release(t, a)
            self._at(t + 500, self._enqueue, c, c.transfer_to)
            return
        if m.is_async:
            self._agent_reply(t, c.cid, a.agent_id)
        self._emit(t, "contact.wrapup_started", contact_id=c.cid, agent_id=a.agent_id)
        acw = 0
        if m.acw is not None:
            acw = m.acw.sample_ms(self.rng)
            if acw:
                self._agent_state(t, a, "acw")
        self._at(t + acw, self._wrap_end, c, a, talk, acw)

    def _wrap_end(self, t: int, c: _Contact, a: _Agent, talk: int, acw: int) -> None:
        s = c.stream
        m = s.m
        rng = self.rng
        self._emit(t, "contact.wrapup_ended", contact_id=c.cid, agent_id=a.agent_id)
        self.legs.append(LegRecord(m.queue_id, c.channel, t, talk, c.hold_ms, acw))
        self._release(t, a)
        if m.qa_probability and rng.random() < m.qa_probability:
            at = self._later(t, m.qa_delay)
            if at is not None:
                score = min(100, max(0, round(rng.gauss(82, 10))))
                self._at(at, self._emit_qa, c.cid, a.agent_id, score)
        if m.is_async:
            if c.round < m.max_rounds and m.customer_reply_probability and rng.random() < m.customer_reply_probability:
                at = self._later(t, m.customer_reply_delay)
                if at is not None:
                    c.round += 1
                    self._at(at, self._customer_writes, c, s, "message.customer_replied")
                return  # still open: the customer will write again
            self._finish(t, c, s)
            return
        self._finish(t, c, s)

    def _emit_qa(self, t: int, cid: str, agent_id: str, score: int) -> None:
        self._emit(t, "qa.scored", contact_id=cid, agent_id=agent_id, score=score)

    def _customer_writes(self, t: int, c: _Contact, s: _Stream, type_: str) -> None:
        if type_ == "contact.reopened":
            self._emit(t, "contact.reopened", contact_id=c.cid)
            self.contacts[c.cid]["reopened"] = True
        self._emit(t, "message.customer_replied", contact_id=c.cid)
        self._at(t + 1000, self._enqueue, c, s)

    def _finish(self, t: int, c: _Contact, s: _Stream) -> None:
        """The contact's (last) handling is over: resolution, survey, repeat, churn."""
        m = s.m
        rng = self.rng
        resolved = rng.random() < m.resolve_probability
        if resolved:
            c.resolved = True
            self.contacts[c.cid]["resolved"] = True
            self._emit(t, "contact.resolved", contact_id=c.cid)
            if m.is_async and not c.reopened and m.reopen_probability and rng.random() < m.reopen_probability:
                at = self._later(t, m.reopen_delay)
                if at is not None:
                    c.reopened = True
                    self._at(at, self._customer_writes, c, s, "contact.reopened")
                    return  # surveys and repeats wait for the final resolution
        if m.survey_probability and rng.random() < m.survey_probability:
            at = self._later(t, m.survey_delay)
            if at is not None:
                self._at(at, self._survey, c, resolved)
        repeat = m.repeat_if_resolved if resolved else m.repeat_if_unresolved
        if repeat and rng.random() < repeat:
            at = self._later(t, m.repeat_delay)
            if at is not None:
                self._at(at, self._repeat, c.origin, c.customer, c.issue, self._first_of(c))
        churn = m.churn_probability * (1 if resolved else 3)
        if churn and rng.random() < churn:
            at = self._later(t, m.churn_delay)
            if at is not None:
                self._at(at, self._churn, c.customer)

    def _survey(self, t: int, c: _Contact, resolved: bool) -> None:
        m = c.stream.m
        rng = self.rng
        if c.issue == "complaint":
            kind = "complaint"
        else:
            kinds = m.survey_kinds
            kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0] if kinds else "csat"
        happy_p = (0.85 if resolved else 0.35) - (0.2 if c.waited_ms > 60_000 else 0.0)
        happy = rng.random() < happy_p
        scale = SURVEYS[kind]
        if kind == "nps":
            score = rng.choices((10, 9, 8, 7), (45, 30, 15, 10))[0] if happy else \
                rng.choices(range(11), (4, 3, 4, 6, 8, 10, 12, 14, 16, 12, 11))[0]
        elif kind == "ces":
            score = rng.choices((7, 6, 5, 4), (40, 30, 20, 10))[0] if happy else \
                rng.choices(range(1, 8), (20, 20, 20, 15, 10, 10, 5))[0]
        else:
            score = rng.choices((5, 4, 3), (60, 30, 10))[0] if happy else \
                rng.choices(range(1, 6), (30, 25, 20, 15, 10))[0]
        self._emit(t, "survey.responded", contact_id=c.cid, survey=kind, score=score, scale_max=scale)

    def _churn(self, t: int, customer: str) -> None:
        if customer != self._placeholder:  # nobody knows who an unidentified caller was
            self._emit(t, "customer.churned", customer_id=customer)

    # -- agents ------------------------------------------------------------------------
    def _release(self, t: int, a: _Agent) -> None:
        """The agent finished (wrap-up ended, or transferred): next contact, a break, or off shift."""
        s = a.stream
        if not a.on_shift:
            self._agent_state(t, a, "offline")
            return
        m = s.m
        if a.next_break_ms is not None and t >= a.next_break_ms and t < self.end_ms:
            self._agent_state(t, a, "away")
            a.next_break_ms = None
            self._at(t + m.break_duration.sample_ms(self.rng), self._break_end, a)
            return
        self._ready(t, a)

    def _ready(self, t: int, a: _Agent) -> None:
        s = a.stream
        c = self._next_waiting(s)
        if c is not None:
            if a.shown in ("offline", "away"):
                self._agent_state(t, a, "available")
            self._assign(t, c, a)
            return
        self._agent_state(t, a, "available")
        a.idle_since = t
        s.free.append((a, t))

    def _break_end(self, t: int, a: _Agent) -> None:
        if not a.on_shift:
            self._agent_state(t, a, "offline")
            return
        self._schedule_break(t, a)
        self._ready(t, a)

    def _schedule_break(self, t: int, a: _Agent) -> None:
        every = a.stream.m.break_every
        a.next_break_ms = None if every is None else t + every.sample_ms(self.rng)

    def _staff(self, t: int, s: _Stream) -> None:
        """Staffing for the 15-minute slot starting at t: agents log in, or go off shift when free."""
        m = s.m
        if m.staffing_curve is None:
            target = len(s.agents)
        else:
            target = round(len(s.agents) * m.staffing_curve[_local_hour(t, m.time_zone)])
            if m.arrivals_per_hour > 0 and s.agents:
                target = max(1, target)
        on = [a for a in s.agents if a.on_shift]
        if len(on) < target:
            for a in s.agents:  # first the ones still finishing (marked off shift), then offline ones
                if len(on) >= target:
                    break
                if not a.on_shift and a.state != "offline":
                    a.on_shift = True
                    on.append(a)
            for a in s.agents:
                if len(on) >= target:
                    break
                if not a.on_shift:
                    a.on_shift = True
                    on.append(a)
                    self._schedule_break(t, a)
                    self._ready(t, a)
        elif len(on) > target:
            surplus = len(on) - target
            # Idle agents leave at once, the others when they finish their contact or break.
            for a in sorted(on, key=lambda a: (a.state != "available", s.agents.index(a)))[:surplus]:
                a.on_shift = False
                if a.state == "available":
                    self._agent_state(t, a, "offline")
        nxt = t - t % SLOT_MS + SLOT_MS
        if m.staffing_curve is not None and nxt < self.end_ms:
            self._at(nxt, self._staff, s)


# --------------------------------------------------------------------------------------- truth

def truth_records(segments: Iterable[SegmentRecord], legs: Iterable[LegRecord], settings) -> list[dict]:
    """Per queue, channel and interval, the contract's `queue_interval` figures (contract §2), by hand.

    Counts and millisecond sums are integers; the ratios are computed once, at the end, as the
    contract defines them (None when the denominator is zero).
    """
    iv = settings.interval_ms
    buckets: dict[tuple[str, str, int], dict] = {}

    def bucket(queue: str, channel: str, end: int) -> dict:
        key = (queue, channel, end - end % iv)
        b = buckets.get(key)
        if b is None:
            b = buckets[key] = {"answered": 0, "abandoned": 0, "flowed_out": 0, "short_abandoned": 0,
                                "answered_within": 0, "abandoned_within": 0, "answered_wait_ms": 0,
                                "max_wait_ms": None, "handled": 0, "talk_ms": 0, "hold_ms": 0, "acw_ms": 0}
        return b

    for seg in segments:
        q = settings.queue(seg.queue_id)
        threshold_ms, short_ms = round(q.threshold_seconds * 1000), round(q.short_abandon_seconds * 1000)
        b = bucket(seg.queue_id, seg.channel, seg.end_ms)
        wait = seg.end_ms - seg.start_ms
        b[seg.outcome] += 1
        if seg.outcome == "answered":
            b["answered_wait_ms"] += wait
            b["answered_within"] += wait <= threshold_ms
        elif seg.outcome == "abandoned":
            b["abandoned_within"] += wait <= threshold_ms
            b["short_abandoned"] += wait < short_ms
        if b["max_wait_ms"] is None or wait > b["max_wait_ms"]:
            b["max_wait_ms"] = wait
    for leg in legs:
        b = bucket(leg.queue_id, leg.channel, leg.end_ms)
        b["handled"] += 1
        b["talk_ms"] += leg.talk_ms
        b["hold_ms"] += leg.hold_ms
        b["acw_ms"] += leg.acw_ms

    def ratio(n: int, d: int) -> float | None:
        return n / d if d > 0 else None

    out = []
    for (queue, channel, start) in sorted(buckets, key=lambda k: (k[2], k[0], k[1])):
        b = buckets[(queue, channel, start)]
        q = settings.queue(queue)
        offered = b["answered"] + b["abandoned"] + b["flowed_out"]
        handled = b["handled"]
        out.append({
            "kind": "queue_interval",
            "interval_start": iso_ms(start),
            "interval_end": iso_ms(start + iv),
            "queue_id": queue,
            "channel": channel,
            "threshold_seconds": q.threshold_seconds,
            "short_abandon_seconds": q.short_abandon_seconds,
            "service_level_target": q.service_level_target,
            "offered": offered,
            "answered": b["answered"],
            "abandoned": b["abandoned"],
            "short_abandoned": b["short_abandoned"],
            "flowed_out": b["flowed_out"],
            "answered_within_threshold": b["answered_within"],
            "abandoned_within_threshold": b["abandoned_within"],
            "service_level": {
                "answered_over_offered": ratio(b["answered_within"], offered - b["short_abandoned"]),
                "answered_over_answered": ratio(b["answered_within"], b["answered"]),
                "abandons_positive": ratio(b["answered_within"] + b["abandoned_within"],
                                           b["answered"] + b["abandoned"]),
            },
            "asa_seconds": b["answered_wait_ms"] / b["answered"] / 1000 if b["answered"] else None,
            "abandon_rate": ratio(b["abandoned"] - b["short_abandoned"], offered - b["short_abandoned"]),
            "max_wait_seconds": None if b["max_wait_ms"] is None else b["max_wait_ms"] / 1000,
            "handled": handled,
            "aht_seconds": (b["talk_ms"] + b["hold_ms"] + b["acw_ms"]) / handled / 1000 if handled else None,
            "talk_seconds": b["talk_ms"] / 1000,
            "hold_seconds": b["hold_ms"] / 1000,
            "acw_seconds": b["acw_ms"] / 1000,
        })
    return out


# --------------------------------------------------------------------------------------- helpers

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


def dumps(ev: dict) -> str:
    """One event as the JSON line `kpi simulate` writes (compact, keys in the order built)."""
    import json

    return json.dumps(ev, separators=(",", ":"))
