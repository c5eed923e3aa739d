"""Prometheus exposition: a custom collector that reads the books at scrape time.

Reading at scrape time (instead of setting gauges per event) means a worker only ever exports
the queues it owns right now: after a rebalance the moved queues simply stop appearing here and
appear on the new owner, with no stale series left behind.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .core.live import agents_view, live_now, live_view

if TYPE_CHECKING:
    from .app import Runtime

WINDOWED_COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "handled")
WINDOWED_SECONDS = {
    "asa_seconds": ("contact_queue_asa_seconds", "Average speed of answer: mean wait of answered segments."),
    "max_wait_seconds": ("contact_queue_max_wait_seconds", "Longest wait among segments ended in the window."),
    "aht_seconds": ("contact_queue_aht_seconds", "Average handle time (talk + hold + ACW) of legs ended in the window."),
}


class KpiCollector:
    def __init__(self, rt: "Runtime", app=None) -> None:
        self.rt = rt
        self.app = app

    def describe(self):
        return []

    def collect(self):
        rt = self.rt
        books = list(rt.queues.values())
        now = live_now(max((b.latest_ms for b in books), default=0), int(time.time() * 1000))
        qc_labels = ["queue", "channel"]
        win_labels = ["queue", "channel", "window"]
        waiting = GaugeMetricFamily("contact_queue_waiting", "Contacts waiting in queue now (queue depth).", labels=qc_labels)
        longest = GaugeMetricFamily("contact_queue_longest_wait_seconds", "Wait of the oldest contact still in queue.", labels=qc_labels)
        target = GaugeMetricFamily("contact_queue_service_level_target_ratio", "Configured service-level target.", labels=qc_labels)
        threshold = GaugeMetricFamily("contact_queue_service_level_threshold_seconds", "Configured service-level threshold T.", labels=qc_labels)
        sl = GaugeMetricFamily("contact_queue_service_level_ratio", "Service level by formula over the window.",
                               labels=win_labels + ["formula"])
        abandon = GaugeMetricFamily("contact_queue_abandon_ratio",
                                    "(abandoned - short abandoned) / (offered - short abandoned) over the window.", labels=win_labels)
        counts = {name: GaugeMetricFamily(f"contact_queue_{name}", f"Segments {name.replace('_', ' ')} in the window"
                                          if name != "handled" else "Agent legs ended in the window.", labels=win_labels)
                  for name in WINDOWED_COUNTS}
        secs = {key: GaugeMetricFamily(name, doc, labels=win_labels) for key, (name, doc) in WINDOWED_SECONDS.items()}
        for view in (v for b in books for v in live_view(b, now)):
            qc = [view["queue_id"], view["channel"]]
            waiting.add_metric(qc, view["waiting"])
            longest.add_metric(qc, view["longest_wait_seconds"] or 0.0)
            target.add_metric(qc, view["service_level_target"])
            threshold.add_metric(qc, view["threshold_seconds"])
            for window, fig in view["windows"].items():
                labels = qc + [window]
                for formula, value in fig["service_level"].items():
                    if value is not None:
                        sl.add_metric(labels + [formula], value)
                if fig["abandon_rate"] is not None:
                    abandon.add_metric(labels, fig["abandon_rate"])
                for name in WINDOWED_COUNTS:
                    counts[name].add_metric(labels, fig[name])
                for key, family in secs.items():
                    if fig[key] is not None:
                        family.add_metric(labels, fig[key])
        yield from (waiting, longest, target, threshold, sl, abandon, *counts.values(), *secs.values())

        stale = CounterMetricFamily("contact_queue_stale_contacts",
                                    "Contacts given up as stale while waiting in the queue: no event for longer than the "
                                    "channel's stale_after_seconds (event time); no longer counted as waiting.",
                                    labels=qc_labels)
        for (queue, channel), n in sorted(item for b in books for item in b.stale.items()):
            stale.add_metric([queue, channel], n)
        yield stale

        hist = HistogramMetricFamily("contact_queue_wait_seconds", "Waits of ended queue segments.", labels=qc_labels)
        for (queue, channel), h in sorted(item for b in books for item in b.wait_histograms.items()):
            hist.add_metric([queue, channel], h.cumulative(), h.sum_ms / 1000)
        yield hist

        agents = GaugeMetricFamily("contact_agents", "Agents serving the queue, by presence state.", labels=["queue", "state"])
        for queue, by_state in sorted(item for b in books for item in agents_view(b).items()):
            for state, n in sorted(by_state.items()):
                agents.add_metric([queue, state], n)
        yield agents
        yield from self._health()

    def _health(self):
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
        yield self._lag()
        backlog = GaugeMetricFamily("kpi_output_batches_in_flight",
                                    "Record batches handed to the producer and not yet acknowledged by the broker.")
        if self.rt.output is not None:
            backlog.add_metric([], self.rt.output.in_flight)
        yield backlog
        yield self._assigned()
        yield from self._redis()

    def _redis(self):
        """Health of the live snapshot (processor/snapshot.py); no samples when redis_url is not set."""
        snap = getattr(self.rt, "snapshot", None)
        up = GaugeMetricFamily("kpi_redis_up", "1 when the last live-snapshot write to Redis succeeded, else 0.")
        writes = CounterMetricFamily("kpi_redis_snapshot_writes", "Queue hashes written to the Redis live snapshot.")
        errors = CounterMetricFamily("kpi_redis_snapshot_errors", "Live-snapshot writes to Redis that failed.")
        if snap is not None:
            up.add_metric([], 1.0 if snap.up else 0.0)
            writes.add_metric([], snap.writes)
            errors.add_metric([], snap.errors)
        yield from (up, writes, errors)

    def _owned(self) -> set:
        """The topic-partitions this worker owns now (active assignment); none before the worker starts."""
        try:
            return set(self.app.assignor.assigned_actives()) if self.app is not None else set()
        except Exception:  # not started yet
            return set()

    def _assigned(self):
        family = GaugeMetricFamily("kpi_assigned_partitions",
                                   "Partitions of each topic this worker owns now (active assignment).", labels=["topic"])
        counts: dict[str, int] = {}
        for tp in self._owned():
            counts[tp.topic] = counts.get(tp.topic, 0) + 1
        for topic, n in sorted(counts.items()):
            family.add_metric([topic], n)
        return family

    def _lag(self):
        lag = GaugeMetricFamily("kpi_consumer_lag_messages", "Messages behind the end of each owned partition.",
                                labels=["topic", "partition"])
        consumer = getattr(self.app, "consumer", None) if self.app is not None else None
        if consumer is None:
            return lag
        from faust.types import TP
        owned = self._owned()  # only what this worker owns now: after a rebalance the old owner must stop reporting
        for (topic, partition), offset in sorted(self.rt.health.offsets.items()):
            if TP(topic, partition) not in owned:
                continue
            try:
                hw = consumer.highwater(TP(topic, partition))
            except Exception:  # partition not assigned (any more) or consumer not started
                continue
            if hw is not None:
                behind = max(0, hw - offset - 1)
                if behind and self.app.in_transaction:
                    behind = min(behind, _behind_fetch_position(consumer, TP(topic, partition), hw))
                lag.add_metric([topic, str(partition)], behind)
        # Owned but nothing read since it was assigned (a quiet partition handed over by another worker):
        # the consumer's position is the committed offset, so the lag is the end minus that position.
        k = self.rt.settings.kafka
        streams = {k.input_topic, k.facts_topic, k.journeys_topic}
        for tp in sorted(owned):
            if tp.topic not in streams or (tp.topic, tp.partition) in self.rt.health.offsets:
                continue
            try:
                hw = consumer.highwater(tp)
            except Exception:
                continue
            if hw is not None and hw >= 0:
                lag.add_metric([tp.topic, str(tp.partition)], _behind_fetch_position(consumer, tp, hw))
        return lag


def _behind_fetch_position(consumer, tp, end: int) -> int:
    """exactly_once: offsets between the last message read and the end may be transaction markers
    (one per commit, after the last message of every partition written in a transaction), which a
    read_committed consumer skips. Kafka's own `records-lag` is the end (the last stable offset)
    minus the fetch position, which steps over them: that, when it is smaller."""
    from .consumer_tuning import fetch_position

    position = fetch_position(consumer, tp)
    return end if position is None else max(0, end - position)
