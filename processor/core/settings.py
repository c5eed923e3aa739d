"""Per-queue and engine parameters as plain frozen values (the shell builds them from YAML and env)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from zoneinfo import ZoneInfo

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """Service-level parameters of one queue (contract §2 defaults)."""

    threshold_seconds: float = 20.0
    short_abandon_seconds: float = 5.0
    service_level_target: float = 0.80
    time_zone: str = "UTC"

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
    """

    interval_minutes: int = 15
    lateness_ms: int = 30_000
    retention_ms: int = 2 * 3_600_000
    default_queue: QueueSettings = field(default_factory=QueueSettings)
    queues: tuple[tuple[str, QueueSettings], ...] = ()

    @property
    def interval_ms(self) -> int:
        return self.interval_minutes * MINUTE_MS

    def queue(self, queue_id: str) -> QueueSettings:
        return _queue_lookup(self.queues, self.default_queue).get(queue_id, self.default_queue)


@lru_cache(maxsize=64)
def _queue_lookup(queues: tuple, default: QueueSettings) -> dict[str, QueueSettings]:
    return dict(queues)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
