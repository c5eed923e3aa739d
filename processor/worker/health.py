"""The processor's own health figures: events processed, dead letters by reason, lag, data age."""
from __future__ import annotations

import logging
import time

log = logging.getLogger("processor")


class Health:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events = 0
        self.duplicates = 0
        self.dead_letters: dict[str, int] = {}
        self.rollups = 0
        self.last_event_ts_ms = 0
        self.last_processed_wall = 0.0
        self.offsets: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset processed
        self._logged_reasons: set[str] = set()

    def observe_offset(self, topic: str, partition: int, offset: int) -> None:
        self.offsets[(topic, partition)] = offset

    def processed(self, ts_ms: int, duplicate: bool) -> None:
        self.events += 1
        self.duplicates += duplicate
        if ts_ms > self.last_event_ts_ms:
            self.last_event_ts_ms = ts_ms
        self.last_processed_wall = time.time()

    def dead_letter(self, reason: str, detail: str) -> None:
        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
        if reason not in self._logged_reasons:  # log each reason once; the counter tells the rest
            self._logged_reasons.add(reason)
            log.warning("dead-lettered an event (%s): %s; further ones are only counted", reason, detail)

    def rollup_published(self) -> None:
        self.rollups += 1
