"""What a simulated contact center is: its queues, customers and feed, as frozen, validated data.

Kept apart from parsing and running so a model can be built in code, read from YAML or written
back without touching the simulation; `Model` validates itself so every path gets the same checks.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

CHANNELS = ("voice", "chat", "email", "messaging", "social", "ticket")
ASYNC_CHANNELS = ("email", "ticket", "messaging", "social")
FLOW_OUT_REASONS = ("timeout", "callback", "voicemail", "overflow")
SURVEYS = {"csat": 5, "ces": 7, "nps": 10, "complaint": 5}  # survey kind -> scale_max
SLOT_MS = 15 * 60_000  # rates and staffing are constant over 15-minute UTC slots


class ModelError(ValueError):
    """An invalid simulation model; the message names the offending key."""



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
