"""Per-queue and engine parameters as plain frozen values (the shell builds them from YAML and env)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Staleness limits by channel (`unknown`: no contact.created seen yet): a contact with something open
# (a queue segment not ended, an agent leg not wrapped up) and no event for longer than this is given
# up as stale (see segments.derive_facts). None: never. Live channels get hours (no call or chat
# really waits, or sits silent in a conversation, that long); asynchronous ones days, since a ticket
# may rightly wait for days; a contact whose channel is not known yet gets the longest of them.
STALE_CHANNELS = ("voice", "chat", "email", "messaging", "social", "ticket", "unknown")
DEFAULT_STALE_AFTER_MS: tuple[tuple[str, int | None], ...] = (
    ("voice", 4 * HOUR_MS), ("chat", 4 * HOUR_MS), ("email", 30 * DAY_MS), ("messaging", 7 * DAY_MS),
    ("social", 7 * DAY_MS), ("ticket", 30 * DAY_MS), ("unknown", 30 * DAY_MS),
)


# Customer ids that mean "not identified" (a caller the system could not match to a customer), compared
# after stripping spaces and case-folding (`Anonymous`, ` UNKNOWN ` match); an absent, empty or blank
# id is always unidentified, whatever the list says. Their contacts count in every queue, experience and agent figure, but match no
# other contact: they are left out of FCR, repeat, reopen and retention, and counted as
# `unidentified_contacts` (docs/unidentified-customers.md).
DEFAULT_UNIDENTIFIED_CUSTOMERS = frozenset({"", "0", "anonymous", "unknown"})


def normalize_customer_id(customer: str) -> str:
    """How a customer id is compared with the unidentified ones."""
    return customer.strip().casefold()


@dataclass(frozen=True, slots=True)
class Calendar:
    """Business hours of a queue, in the queue's local time zone.

    hours: seven entries, Monday first; each a sorted tuple of non-overlapping (start, end) local
    times in minutes after midnight, 0 <= start < end <= 1440 (1440 = 24:00). An empty day is closed.
    holidays: ISO dates (YYYY-MM-DD, local) on which the queue is closed all day.
    """

    hours: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    holidays: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Parameters of one queue (contract §2 defaults), plus the optional calendar and capacity model."""

    threshold_seconds: float = 20.0
    short_abandon_seconds: float = 5.0
    service_level_target: float = 0.80
    time_zone: str = "UTC"
    calendar: Calendar | None = None          # business hours for FRT / TTR; None = no calendar
    agent_hour_cost: float | None = None      # cost of one staffed agent-hour; None = no cost figures
    availability: float = 1.0                 # capacity model: share of staffed time agents can take contacts
    occupancy_target: float = 0.85            # capacity model: planned occupancy
    # channel -> inactivity after which an open contact is stale (ms; None = never); see DEFAULT_STALE_AFTER_MS
    stale_after_ms: tuple[tuple[str, int | None], ...] = DEFAULT_STALE_AFTER_MS
    at_risk_seconds: float = 10.0             # a waiting contact is at risk when its wait passes T within this
    staffing_window_minutes: int = 30         # live Erlang staffing: arrivals, AHT, patience of the last N minutes

    @property
    def threshold_ms(self) -> int:
        return round(self.threshold_seconds * 1000)

    @property
    def short_abandon_ms(self) -> int:
        return round(self.short_abandon_seconds * 1000)

    @property
    def at_risk_ms(self) -> int:
        return round(self.at_risk_seconds * 1000)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Time parameters shared by every queue.

    lateness: how long a record waits for stragglers before version 1 is published.
    retention: how far behind stream time an event may still correct figures; older is "too late".
    recontact window W: FCR / repeat / reopen horizon; also how long a contact's context
    (created time, channel, customer, queues) is kept after its last event.
    retention_horizons_days: post-contact retention horizons (customers not churned within them).
    unidentified_customers: normalized customer ids (normalize_customer_id) that mean "not identified".
    """

    interval_minutes: int = 15
    lateness_ms: int = 30_000
    retention_ms: int = 2 * 3_600_000
    default_queue: QueueSettings = field(default_factory=QueueSettings)
    queues: tuple[tuple[str, QueueSettings], ...] = ()
    recontact_window_ms: int = 7 * DAY_MS
    retention_horizons_days: tuple[int, ...] = (30, 60, 90)
    unidentified_customers: frozenset[str] = DEFAULT_UNIDENTIFIED_CUSTOMERS

    def unidentified(self, customer: str | None) -> bool:
        """True when the id names no customer (absent, or one of unidentified_customers)."""
        if customer is None:
            return True
        key = normalize_customer_id(customer)
        return not key or key in self.unidentified_customers

    @property
    def interval_ms(self) -> int:
        return self.interval_minutes * MINUTE_MS

    def queue(self, queue_id: str) -> QueueSettings:
        # Called for every fact: the table is cached per settings object (frozen, so it cannot go stale),
        # found by identity rather than by hashing every queue's settings on each call.
        return self._lookup()[1].get(queue_id, self.default_queue)

    def stale_after(self, queue_id: str, channel: str) -> int | None:
        """Milliseconds without an event after which an open contact of this queue and channel is stale
        (None: never). A channel missing from the queue's table takes the `unknown` limit."""
        cache = self._lookup()[2]
        key = (queue_id, channel)
        if key in cache:
            return cache[key]
        limits = dict(self.queue(queue_id).stale_after_ms)
        limit = cache[key] = limits.get(channel, limits.get("unknown"))
        return limit

    def min_stale_after(self) -> float:
        """The smallest staleness limit of any queue and channel (inf when none has one): a silence no
        longer than this makes nothing stale, whatever the queue and channel."""
        cache = self._lookup()[2]
        low = cache.get(None)
        if low is None:
            tables = [self.default_queue.stale_after_ms] + [q.stale_after_ms for _, q in self.queues]
            low = cache[None] = min((ms for t in tables for _, ms in t if ms is not None), default=float("inf"))
        return low

    def _lookup(self) -> tuple:
        entry = _LOOKUPS.get(id(self))
        if entry is None or entry[0] is not self:
            if len(_LOOKUPS) >= 256:
                _LOOKUPS.clear()
            entry = _LOOKUPS[id(self)] = (self, dict(self.queues), {})
        return entry


# id(settings) -> (settings, queue id -> QueueSettings, (queue, channel) -> stale limit); the settings
# object is held, so its id is not reused
_LOOKUPS: dict[int, tuple[EngineSettings, dict[str, QueueSettings], dict[tuple[str, str], int | None]]] = {}


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
