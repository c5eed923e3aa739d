"""Per-queue and engine parameters as plain frozen values (the shell builds them from YAML and env)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
DAY_MS = 86_400_000


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

    @property
    def threshold_ms(self) -> int:
        return round(self.threshold_seconds * 1000)

    @property
    def short_abandon_ms(self) -> int:
        return round(self.short_abandon_seconds * 1000)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Time parameters shared by every queue.

    lateness: how long a record waits for stragglers before version 1 is published.
    retention: how far behind stream time an event may still correct figures; older is "too late".
    recontact window W: FCR / repeat / reopen horizon; also how long a contact's context
    (created time, channel, customer, queues) is kept after its last event.
    retention_horizons_days: post-contact retention horizons (customers not churned within them).
    """

    interval_minutes: int = 15
    lateness_ms: int = 30_000
    retention_ms: int = 2 * 3_600_000
    default_queue: QueueSettings = field(default_factory=QueueSettings)
    queues: tuple[tuple[str, QueueSettings], ...] = ()
    recontact_window_ms: int = 7 * DAY_MS
    retention_horizons_days: tuple[int, ...] = (30, 60, 90)

    @property
    def interval_ms(self) -> int:
        return self.interval_minutes * MINUTE_MS

    def queue(self, queue_id: str) -> QueueSettings:
        # Called for every fact: the table is cached per settings object (frozen, so it cannot go stale),
        # found by identity rather than by hashing every queue's settings on each call.
        entry = _LOOKUPS.get(id(self))
        if entry is None or entry[0] is not self:
            if len(_LOOKUPS) >= 256:
                _LOOKUPS.clear()
            entry = _LOOKUPS[id(self)] = (self, dict(self.queues))
        return entry[1].get(queue_id, self.default_queue)


# id(settings) -> (settings, queue id -> QueueSettings); the settings object is held, so its id is not reused
_LOOKUPS: dict[int, tuple[EngineSettings, dict[str, QueueSettings]]] = {}


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
