"""Prometheus families of the outcomes: provisional resolution (FCR, repeats, reopens), capacity, cost,
foresight and staffing figures, read from the queue books at scrape time.

Same rules as metrics/queues.py: only what this worker owns now, no sample where a ratio's
denominator is zero.
"""
from __future__ import annotations

import time
from prometheus_client.core import GaugeMetricFamily

from ..core.capacity import capacity_view, staffing_view
from ..core.foresight import foresight_view
from ..core.live import books_now
from .queues import BookCollector

PROVISIONAL = {
    "fcr": ("contact_fcr_provisional_ratio",
            "First-contact resolution over the days whose resolution_day record is not final yet (open window)."),
    "repeat_rate": ("contact_repeat_provisional_ratio", "Repeat-contact rate over the open window."),
    "reopen_rate": ("contact_reopen_provisional_ratio", "Reopen rate over the open window."),
}


class OutcomeCollector(BookCollector):
    def collect(self):
        yield from self._provisional()
        yield from self._capacity()
        yield from self._foresight()
        yield from self._staffing()

    def _provisional(self):
        labels = ["queue", "channel"]
        ratios = {key: GaugeMetricFamily(name, doc, labels=labels) for key, (name, doc) in PROVISIONAL.items()}
        contacts = GaugeMetricFamily("contact_resolution_provisional_contacts",
                                     "Contacts created in the days whose resolution_day record is not final yet.", labels=labels)
        firsts = GaugeMetricFamily("contact_resolution_provisional_first_contacts",
                                   "First contacts (not repeats) in the open window.", labels=labels)
        unidentified = GaugeMetricFamily(
            "contact_resolution_provisional_unidentified_contacts",
            "Contacts of unidentified customers (placeholder ids) in the open window: left out of the "
            "provisional FCR, repeat and reopen figures and counts.", labels=labels)
        for book in list(self.books()):
            for (queue, channel), fig in book.resolution.provisional(book.stream_ms).items():
                contacts.add_metric([queue, channel], fig["contacts"])
                firsts.add_metric([queue, channel], fig["first_contacts"])
                unidentified.add_metric([queue, channel], fig["unidentified_contacts"])
                for key, family in ratios.items():
                    if fig[key] is not None:
                        family.add_metric([queue, channel], fig[key])
        yield from (contacts, firsts, unidentified, *ratios.values())

    def _capacity(self):
        books = list(self.books())
        now = books_now(books, int(time.time() * 1000))
        staffed = GaugeMetricFamily("contact_capacity_staffed_agents", "Agents serving the queue whose state is not offline.",
                                    labels=["queue"])
        slots = GaugeMetricFamily("contact_capacity_slots", "Staffed agents x concurrency (agent capacity, 1 if not given).",
                                  labels=["queue"])
        expected = GaugeMetricFamily(
            "contact_capacity_expected_contacts_per_hour",
            "Staffed agents x concurrency x 3600 / AHT (60m) x availability x occupancy target.", labels=["queue"])
        actual = GaugeMetricFamily("contact_capacity_actual_contacts_per_hour",
                                   "Agent legs of the queue ended in the rolling 60 minutes.", labels=["queue"])
        staffed_time = GaugeMetricFamily("contact_capacity_staffed_agent_seconds",
                                         "Staffed agent time of the queue in the rolling 60 minutes (agent-seconds).",
                                         labels=["queue"])
        cost = GaugeMetricFamily("contact_cost_per_contact",
                                 "Agent-hour cost x staffed agent-hours / contacts handled, rolling 60 minutes.",
                                 labels=["queue", "window"])
        for view in (v for b in books for v in capacity_view(b, now)):
            q = [view["queue_id"]]
            staffed.add_metric(q, view["staffed_agents"])
            slots.add_metric(q, view["slots"])
            actual.add_metric(q, view["actual_contacts_per_hour"])
            staffed_time.add_metric(q, view["staffed_agent_hours"] * 3600)
            if view["expected_contacts_per_hour"] is not None:
                expected.add_metric(q, view["expected_contacts_per_hour"])
            if view["cost_per_contact"] is not None:
                cost.add_metric(q + ["60m"], view["cost_per_contact"])
        yield from (staffed, slots, expected, actual, staffed_time, cost)

    def _foresight(self):
        """At risk, breached and projected service level, at each book's stream clock (event time)."""
        qc = ["queue", "channel"]
        at_risk = GaugeMetricFamily("contact_queue_at_risk",
                                    "Contacts waiting now whose wait passes T within at_risk_seconds (T - at_risk < wait <= T), "
                                    "at the stream clock.", labels=qc)
        breached = GaugeMetricFamily("contact_queue_breached_waiting",
                                     "Contacts waiting now whose wait is already past T, at the stream clock.", labels=qc)
        projected = GaugeMetricFamily(
            "contact_queue_projected_service_level_ratio",
            "Service level of the current interval or today if every contact waiting now is answered after T "
            "(bound=worst) or now (bound=best).", labels=qc + ["window", "bound", "formula"])
        for book in list(self.books()):
            for view in foresight_view(book, book.latest_ms):
                labels = [view["queue_id"], view["channel"]]
                at_risk.add_metric(labels, view["at_risk"])
                breached.add_metric(labels, view["breached_waiting"])
                for window, bounds in view["projected_service_level"].items():
                    for bound, formulas in bounds.items():
                        for formula, value in formulas.items():
                            if value is not None:
                                projected.add_metric(labels + [window, bound, formula], value)
        yield from (at_risk, breached, projected)

    def _staffing(self):
        """Live Erlang C / Erlang A staffing per queue, at each book's stream clock; no sample without inputs."""
        labels = ["queue", "model"]
        required = GaugeMetricFamily("contact_queue_required_agents",
                                     "Agents to staff now for T and the target, by queueing model (erlang_c, erlang_a), "
                                     "with concurrency and availability (shrinkage).", labels=labels)
        gap = GaugeMetricFamily("contact_queue_staffing_gap_agents",
                                "Required agents minus agents staffed now (negative: more staffed than needed).", labels=labels)
        sl = GaugeMetricFamily("contact_queue_predicted_service_level_ratio",
                               "Service level (answered within T / arrivals) the agents staffed now would give.", labels=labels)
        asa = GaugeMetricFamily("contact_queue_predicted_asa_seconds",
                                "ASA the agents staffed now would give (no sample when the queue would grow without bound).",
                                labels=labels)
        for book in list(self.books()):
            for view in staffing_view(book, book.latest_ms):
                for model, fig in view["models"].items():
                    key = [view["queue_id"], model]
                    for family, field in ((required, "required_agents"), (gap, "staffing_gap_agents"),
                                          (sl, "predicted_service_level"), (asa, "predicted_asa_seconds")):
                        if fig[field] is not None:
                            family.add_metric(key, fig[field])
        yield from (required, gap, sl, asa)
