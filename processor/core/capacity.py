"""Capacity model and cost per contact of each queue at an instant: what the capacity gauges show.

expected contacts per hour = staffed agents x concurrency x 3600 / AHT x availability x occupancy
  staffed agents x concurrency = the sum, over agents serving the queue whose latest state is not
  offline, of their `capacity` (concurrent contacts; 1 when not given); AHT = the queue's AHT over
  the rolling 60-minute window (all channels); availability and occupancy = the queue's planning
  factors (settings `availability`, default 1.0, and `occupancy_target`, default 0.85).
actual contacts per hour = agent legs of the queue ended in the rolling 60-minute window.
cost per contact (queues with `agent_hour_cost`) = agent_hour_cost x staffed agent-hours of the
  queue in the 60-minute window / legs ended in it. Staffed agent-hours integrate the presence of
  every agent serving the queue (not offline) over the window; an agent serving several queues
  counts in each.
live Erlang staffing (staffing_view): core/staffing.py on the queue's last `staffing_window_minutes`.
"""
from __future__ import annotations

from .figures import aht_seconds, cost_per_contact, expected_contacts_per_hour
from .queues import QueueBook
from .settings import MINUTE_MS
from .staffing import erlang_inputs, staffed_ms, staffing_figures
from .stats import SegmentStats

__all__ = ["capacity_view", "staffed_ms", "staffing_view"]

WINDOW_MINUTES = 60


def capacity_view(book: QueueBook, now_ms: int) -> list[dict]:
    """One dict per queue with agents: staffed agents, slots, expected and actual contacts per hour, cost."""
    this_minute = now_ms - now_ms % MINUTE_MS
    since = this_minute - (WINDOW_MINUTES - 1) * MINUTE_MS
    channels: dict[str, list[str]] = {}
    for queue, channel in book.queues():
        channels.setdefault(queue, []).append(channel)
    out = []
    for queue in sorted(book.agents):
        members = book.agents[queue]
        q = book.settings.queue(queue)
        caps = book.agent_capacity.get(queue, {})
        staffed = [a for a, state in members.items() if state != "offline"]
        slots = sum(caps.get(a, 1) for a in staffed)
        window = SegmentStats()
        for channel in channels.get(queue, ()):
            window.merge(book.window_stats((queue, channel), "60m", now_ms))
        aht = aht_seconds(window)
        hours = sum(staffed_ms(h, since, now_ms) for a, h in book.presence.get(queue, {}).items() if a in members) / 3_600_000
        out.append({
            "queue_id": queue,
            "staffed_agents": len(staffed),
            "slots": slots,
            "aht_seconds": aht,
            "expected_contacts_per_hour": expected_contacts_per_hour(slots, aht, q.availability, q.occupancy_target),
            "actual_contacts_per_hour": window.handled,
            "staffed_agent_hours": hours,
            "cost_per_contact": (cost_per_contact(q.agent_hour_cost, hours, window.handled)
                                 if q.agent_hour_cost is not None else None),
        })
    return out


def staffing_view(book: QueueBook, now_ms: int) -> list[dict]:
    """One dict per queue with figures or agents: Erlang inputs over the queue's staffing window (all
    channels): its last `staffing_window_minutes` complete minutes, so the inputs (and the remembered
    Erlang figures) change when a minute completes or a late event lands, not at every scrape."""
    channels: dict[str, list[str]] = {}
    for queue, channel in book.queues():
        channels.setdefault(queue, []).append(channel)
    out = []
    for queue in sorted(set(channels) | set(book.agents)):
        q = book.settings.queue(queue)
        until = now_ms - now_ms % MINUTE_MS  # the running minute is not complete yet
        since = until - q.staffing_window_minutes * MINUTE_MS
        window = SegmentStats()
        for channel in channels.get(queue, ()):
            book.minutes_between((queue, channel), since, until, window)
        inputs = erlang_inputs(window, (until - since) / 1000)
        fig = staffing_figures(inputs, q, book.agents.get(queue, {}), book.agent_capacity.get(queue, {}))
        fig["queue_id"] = queue
        fig["window_minutes"] = q.staffing_window_minutes
        out.append(fig)
    return out
