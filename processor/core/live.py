"""The live view of a partition's queues at a given instant: what gauges, Redis and the wallboard show."""
from __future__ import annotations

from typing import Iterable

from .figures import segment_figures
from .queues import WINDOWS, QueueBook

LIVE_WINDOWS = tuple(WINDOWS) + ("today",)


# The interval figures a live window shows (segment_figures names them; the counts "within threshold"
# and the talk/hold/ACW split are for the rollups).
LIVE_FIELDS = ("offered", "answered", "abandoned", "short_abandoned", "flowed_out", "service_level", "asa_seconds",
               "abandon_rate", "max_wait_seconds", "handled", "aht_seconds")


def live_view(book: QueueBook, now_ms: int) -> list[dict]:
    """One dict per (queue, channel): depth, longest wait, agents, and every windowed figure."""
    out = []
    for queue, channel in book.queues():
        waiting, longest = book.waiting((queue, channel), now_ms)
        q = book.settings.queue(queue)
        windows = {}
        for w in LIVE_WINDOWS:
            fig = segment_figures(book.window_stats((queue, channel), w, now_ms))
            windows[w] = {name: fig[name] for name in LIVE_FIELDS}
        out.append({
            "queue_id": queue,
            "channel": channel,
            "waiting": waiting,
            "longest_wait_seconds": longest,
            "service_level_target": q.service_level_target,
            "threshold_seconds": q.threshold_seconds,
            "windows": windows,
        })
    return out


def agents_view(book: QueueBook) -> dict[str, dict[str, int]]:
    """Agents by presence state, per queue they serve."""
    return {queue: book.agents_by_state(queue) for queue in sorted(book.agents)}


LIVE_SLACK_MS = 5 * 60_000


def live_now(stream_ms: int, wall_ms: int) -> int:
    """The instant windows end at: wall-clock time while the stream is live, stream time when replaying history.

    A live wallboard must keep rolling when a queue goes quiet, but a stream of old events
    (backfill, tests, a replay through Kafka) must be judged at its own event time.
    """
    if stream_ms >= wall_ms - LIVE_SLACK_MS:
        return max(stream_ms, wall_ms)
    return stream_ms


def books_now(books: Iterable[QueueBook], wall_ms: int) -> int:
    """`live_now` of a worker's books: the newest event time any of them has seen (0 with none)."""
    return live_now(max((b.latest_ms for b in books), default=0), wall_ms)
