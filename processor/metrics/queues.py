"""Prometheus families of the queues (live and windowed figures, stale contacts, waits, agents by
state), read from the queue books at scrape time.

Reading at scrape time (instead of setting gauges per event) means a worker only ever exports
the queues it owns right now: after a rebalance the moved queues simply stop appearing here and
appear on the new owner, with no stale series left behind.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..core.live import agents_view, books_now, live_view

if TYPE_CHECKING:
    from ..core.queues import QueueBook

WINDOWED_COUNTS = ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "handled")
WINDOWED_SECONDS = {
    "asa_seconds": ("contact_queue_asa_seconds", "Average speed of answer: mean wait of answered segments."),
    "max_wait_seconds": ("contact_queue_max_wait_seconds", "Longest wait among segments ended in the window."),
    "aht_seconds": ("contact_queue_aht_seconds", "Average handle time (talk + hold + ACW) of legs ended in the window."),
}


class BookCollector:
    """What the queue books hold, read at each scrape: `books()` gives the queue books this worker owns
    now (one per owned facts partition; a rebuild replaces them)."""

    def __init__(self, books: Callable[[], Iterable["QueueBook"]]) -> None:
        self.books = books

    def describe(self):
        return []


class QueueCollector(BookCollector):
    def collect(self):
        books = list(self.books())
        now = books_now(books, int(time.time() * 1000))
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
