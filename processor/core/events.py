"""The lifecycle event as the core sees it: already validated, times in integer milliseconds.

Integer milliseconds (not float seconds) so that sums are exact and independent of the
order in which events are added: streaming and replay must agree to the last digit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from sys import intern

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)

CHANNELS = ("voice", "chat", "email", "messaging", "social", "ticket")
UNKNOWN_CHANNEL = "unknown"

# Event types that end a queue segment, and the outcome each records.
SEGMENT_ENDS = {
    "contact.answered": "answered",
    "contact.abandoned": "abandoned",
    "contact.flowed_out": "flowed_out",
}

CONTACT_TYPES = (
    "contact.created",
    "contact.queued",
    "contact.answered",
    "contact.abandoned",
    "contact.flowed_out",
    "contact.hold_started",
    "contact.hold_ended",
    "contact.transferred",
    "contact.wrapup_started",
    "contact.wrapup_ended",
    "contact.resolved",
    "contact.reopened",
    "message.agent_replied",
    "message.customer_replied",
    "survey.responded",
    "qa.scored",
)
AGENT_TYPES = ("agent.state_changed",)
CUSTOMER_TYPES = ("customer.churned",)
EVENT_TYPES = CONTACT_TYPES + AGENT_TYPES + CUSTOMER_TYPES

AGENT_STATES = ("available", "busy", "acw", "away", "offline")


@dataclass(slots=True)
class Event:
    """One validated lifecycle event. Type-specific fields are None where they do not apply."""

    event_id: str
    type: str
    ts_ms: int
    contact_id: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    issue: str | None = None
    queue_id: str | None = None
    priority: int | None = None
    agent_id: str | None = None
    reason: str | None = None
    to_queue_id: str | None = None
    automated: bool = False
    survey: str | None = None
    score: float | None = None
    scale_max: float | None = None
    state: str | None = None
    queues: tuple[str, ...] = field(default_factory=tuple)
    capacity: int | None = None

    @property
    def key(self) -> str:
        """The partition key the contract prescribes for this event."""
        return self.contact_id or self.agent_id or self.customer_id or ""

    def sort_key(self) -> tuple[int, int, str]:
        """Total order used everywhere: event time, then lifecycle rank, then id (ties are deterministic)."""
        return (self.ts_ms, TYPE_RANK.get(self.type, 50), self.event_id)


# Within the same millisecond, lifecycle order decides (created before queued before answered ...).
TYPE_RANK = {
    "contact.created": 0,
    "contact.queued": 10,
    "contact.answered": 20,
    "contact.abandoned": 20,
    "contact.flowed_out": 20,
    "contact.hold_started": 30,
    "contact.hold_ended": 31,
    "contact.transferred": 40,
    "contact.wrapup_started": 41,
    "contact.wrapup_ended": 42,
    "contact.resolved": 60,
    "contact.reopened": 61,
}


def parse_ts_ms(text: str) -> int:
    """RFC 3339 with an offset to epoch milliseconds. Raises ValueError on a naive or malformed time."""
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("timestamp must be an RFC 3339 string")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return (dt - _EPOCH) // _MS


def format_ts(ts_ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC, 'Z' suffix, millisecond precision."""
    text = _FORMATTED.get(ts_ms)
    if text is None:
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc)
        text = dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
        if len(_FORMATTED) >= 4096:
            _FORMATTED.clear()
        _FORMATTED[ts_ms] = text
    return text


# Records format the same few interval bounds over and over (one per agent, queue and channel).
_FORMATTED: dict[int, str] = {}


_FIELDS = tuple(Event.__dataclass_fields__)


def event_to_state(e: Event) -> dict:
    """Compact dict for state stores: only the fields that are set."""
    out = {}
    for name in _FIELDS:
        v = getattr(e, name)
        if v is None or v == () or (name == "automated" and v is False):
            continue
        out[name] = list(v) if name == "queues" else v
    return out


# Fields whose strings many kept events share (ids of contacts, customers, agents, queues; names):
# one copy each when rebuilt from a table, as processor.decode does for events read (docs/memory.md#what-made-it-smaller).
SHARED_FIELDS = ("type", "contact_id", "channel", "customer_id", "issue", "queue_id", "agent_id", "reason",
                 "to_queue_id", "survey", "state")


def event_from_state(d: dict) -> Event:
    d = {k: intern(v) if k in SHARED_FIELDS and v.__class__ is str else v for k, v in d.items()}
    if "queues" in d:
        d["queues"] = tuple(intern(q) for q in d["queues"])
    return Event(**d)


def event_to_contract(e: Event) -> dict:
    """The event in contract form again (`ts` as RFC 3339), e.g. for a dead letter raised after decoding."""
    d = event_to_state(e)
    d["ts"] = format_ts(d.pop("ts_ms"))
    return d
