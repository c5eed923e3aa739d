"""Prometheus families of the worker's own health: events processed and dead-lettered, rollups
published, event-time clocks, consumer lag, output backlog, assigned partitions, and the offset
counters (gaps mended, repeats, records held, fetch stalls).

The collector only reads and formats: the lag and the assignment come from the worker's offsets
module (worker/offsets.py), as callables, so nothing here imports the worker.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class HealthFigures(Protocol):
    """What worker/health.py's Health counts."""

    events: int
    duplicates: int
    dead_letters: dict[str, int]
    rollups: int
    last_event_ts_ms: int


class WorkerFigures(Protocol):
    """What the worker's Runtime holds (worker/runtime.py)."""

    health: HealthFigures
    stream_ms: int
    watermark_ms: int
    offset_gaps: int
    offset_repeats: int
    offsets_held: int
    fetch_stalls: int
    output: object | None  # with `in_flight`: record batches not yet acknowledged


def _nothing() -> list:
    return []


class WorkerCollector:
    """`rt`: the worker's figures; `lag()`: (topic, partition, messages behind) of each owned partition;
    `assigned()`: topic -> partitions owned now. Without a consumer both give nothing."""

    def __init__(self, rt: WorkerFigures, lag: Callable[[], list] = _nothing,
                 assigned: Callable[[], dict] = dict) -> None:
        self.rt, self.lag, self.assigned = rt, lag, assigned

    def describe(self):
        return []

    def collect(self):
        h = self.rt.health
        yield CounterMetricFamily("kpi_events_processed", "Valid lifecycle events processed.", value=h.events)
        yield CounterMetricFamily("kpi_events_duplicate", "Events ignored as duplicates of an event_id already seen.", value=h.duplicates)
        dl = CounterMetricFamily("kpi_events_dead_lettered", "Events sent to the dead-letter topic, by reason.", labels=["reason"])
        for reason, n in sorted(h.dead_letters.items()):
            dl.add_metric([reason], n)
        yield dl
        yield CounterMetricFamily("kpi_rollups_published", "Rollup records published (all versions).", value=h.rollups)
        age = GaugeMetricFamily("kpi_last_event_age_seconds", "Wall-clock time since the newest event's event time.")
        if h.last_event_ts_ms:
            age.add_metric([], max(0.0, time.time() - h.last_event_ts_ms / 1000))
        yield age
        stream = GaugeMetricFamily("kpi_stream_time_seconds", "Stream time (newest event time seen), Unix seconds.")
        stream.add_metric([], self.rt.stream_ms / 1000)
        yield stream
        wm = GaugeMetricFamily("kpi_watermark_seconds",
                               "Event-time watermark that closes intervals (slowest active input partition), Unix seconds.")
        wm.add_metric([], self.rt.watermark_ms / 1000)
        yield wm
        lag = GaugeMetricFamily("kpi_consumer_lag_messages", "Messages behind the end of each owned partition.",
                                labels=["topic", "partition"])
        for topic, partition, behind in self.lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        backlog = GaugeMetricFamily("kpi_output_batches_in_flight",
                                    "Record batches handed to the producer and not yet acknowledged by the broker.")
        if self.rt.output is not None:
            backlog.add_metric([], self.rt.output.in_flight)
        yield backlog
        family = GaugeMetricFamily("kpi_assigned_partitions",
                                   "Partitions of each topic this worker owns now (active assignment).", labels=["topic"])
        for topic, n in sorted(self.assigned().items()):
            family.add_metric([topic], n)
        yield family
        yield from self._offsets()

    def _offsets(self):
        rt = self.rt
        yield CounterMetricFamily("kpi_input_offset_gaps", "Gaps in the offsets the consumer delivered (messages it "
                                  "skipped), each read again directly. Normally 0.", value=rt.offset_gaps)
        yield CounterMetricFamily("kpi_input_offset_repeats", "Messages the consumer delivered again after a later "
                                  "offset of their partition, not applied twice. Normally 0.", value=rt.offset_repeats)
        yield CounterMetricFamily("kpi_input_offsets_held", "Messages handed over between a rebuild of the books and "
                                  "the seek to the committed offsets that follows it: not applied, read again after "
                                  "the seek (processor/offset_guard.py).", value=rt.offsets_held)
        yield CounterMetricFamily("kpi_input_fetch_stalls", "Partitions whose fetched messages the consumer dropped "
                                  "without seeking back, each sought back to the first one not delivered. Normally 0.",
                                  value=rt.fetch_stalls)
