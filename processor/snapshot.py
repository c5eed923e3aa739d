"""The live snapshot in Redis: the current figures of every queue, for the wallboard and anything else.

Every worker writes the queues it owns (its facts partitions' books) and nothing else, so one read
gives the whole center however many workers run. The figures come from `core.live.live_view`
unchanged: this module only reshapes them into Redis keys and decides when to write.

Key layout (``prefix`` defaults to ``kpi``); every hash field holds a JSON value:

``kpi:queue:<queue>:<channel>`` (hash, TTL ``TTL_SECONDS``)
    ``queue_id``, ``channel``, ``waiting``, ``longest_wait_seconds`` (null when nobody waits),
    ``service_level_target``, ``threshold_seconds``, ``short_abandon_seconds``, ``window:5m``,
    ``window:15m``, ``window:60m``, ``window:today`` (each an object with offered, answered,
    abandoned, short_abandoned, flowed_out, service_level {three formulas}, asa_seconds,
    abandon_rate, max_wait_seconds, handled, aht_seconds), ``agents`` (state -> agents serving
    the queue), ``owner`` (worker id), ``partition`` (its facts partition), ``stream_time_ms``
    (newest event time the owner has seen), ``as_of_ms`` (the instant the windows end at),
    ``updated_at_ms`` (wall clock of the write), ``layout`` (1).
``kpi:queues`` (sorted set)
    member: the hash key; score: wall-clock ms at which its owner last confirmed it (every tick,
    changed or not). Readers judge staleness by it; members older than ``TTL_SECONDS`` are pruned.
``kpi:changes`` (pub/sub channel)
    ``{"owner", "updated_at_ms", "full", "keys": [hash keys]}`` published after a write in which
    at least one queue's figures changed (``full`` after a start or a Redis outage: every key).

A hash is rewritten when its figures changed (longest wait compared to the whole second), and
at least every ``REFRESH_SECONDS`` (which renews its TTL); a queue moved by a rebalance is
written at once by its new owner, which has never written it. Redis being away never slows or
stops the processor: the timer only computes and hands the snapshot over; a background task
writes, logs the outage once, retries with backoff, and writes everything at once when Redis
is back.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .core.capacity import staffing_view
from .core.foresight import foresight_view
from .core.live import agents_view, books_now, live_view

if TYPE_CHECKING:
    from .core.queues import QueueBook

log = logging.getLogger("processor.snapshot")

SNAPSHOT_SECONDS = 0.5     # the worker's timer: compute and hand over a snapshot this often
REFRESH_SECONDS = 5.0      # rewrite an unchanged hash this often (renews its TTL, heals a flushed Redis)
TTL_SECONDS = 120          # a hash nobody rewrites (its owner is gone) disappears after this
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)  # retry delays while Redis is unreachable (the last one repeats)
LAYOUT = 1
# Fields that say when, not what: a change in them alone is not a change of the figures.
VOLATILE = ("stream_time_ms", "as_of_ms", "updated_at_ms")


def queue_key(queue: str, channel: str, prefix: str = "kpi") -> str:
    return f"{prefix}:queue:{queue}:{channel}"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def redis_location(url: str) -> str:
    """host:port/db of a redis:// URL, without the password, for log lines."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


# -- reshaping (pure) ------------------------------------------------------------------------------

def snapshot_now(books: Iterable["QueueBook"], wall_ms: int | None = None) -> int:
    """The instant the windows end at: the same rule as the Prometheus collector."""
    wall = int(time.time() * 1000) if wall_ms is None else wall_ms
    return books_now(books, wall)


def snapshot_entries(books: Mapping[int, "QueueBook"], now_ms: int, owner: str,
                     prefix: str = "kpi") -> dict[str, dict[str, Any]]:
    """Hash key -> the fields (plain Python values) of every (queue, channel) the books hold."""
    out: dict[str, dict[str, Any]] = {}
    for partition, book in sorted(books.items()):
        agents = agents_view(book)
        foresight = {(v["queue_id"], v["channel"]): v for v in foresight_view(book, book.latest_ms)}
        staffing = {v["queue_id"]: v for v in staffing_view(book, book.latest_ms)}
        for view in live_view(book, now_ms):
            queue, channel = view["queue_id"], view["channel"]
            entry: dict[str, Any] = {
                "queue_id": queue,
                "channel": channel,
                "waiting": view["waiting"],
                "longest_wait_seconds": view["longest_wait_seconds"],
                "service_level_target": view["service_level_target"],
                "threshold_seconds": view["threshold_seconds"],
                "short_abandon_seconds": book.settings.queue(queue).short_abandon_seconds,
            }
            for window, figures in view["windows"].items():
                entry[f"window:{window}"] = figures
            entry["agents"] = dict(sorted(agents.get(queue, {}).items()))
            ahead = foresight.get((queue, channel))
            entry["at_risk"] = ahead["at_risk"] if ahead else 0
            entry["breached_waiting"] = ahead["breached_waiting"] if ahead else 0
            entry["staffing"] = _need_have(staffing.get(queue))
            entry.update(owner=owner, partition=partition, stream_time_ms=book.latest_ms, as_of_ms=now_ms,
                         layout=LAYOUT)
            out[queue_key(queue, channel, prefix)] = entry
    return out


def _need_have(view: dict | None) -> dict[str, Any]:
    """"need N / have M" for the wallboard: Erlang A (abandonment included) when it has a figure, else Erlang C."""
    if view is None:
        return {"need": None, "have": None, "model": None}
    for model in ("erlang_a", "erlang_c"):
        need = view["models"][model]["required_agents"]
        if need is not None:
            return {"need": need, "have": view["staffed_agents"], "model": model}
    return {"need": None, "have": view["staffed_agents"], "model": None}


def digest(entry: Mapping[str, Any]) -> str:
    """What the figures are, without the time stamps; longest wait to the whole second."""
    body = {k: v for k, v in entry.items() if k not in VOLATILE}
    if body.get("longest_wait_seconds") is not None:
        body["longest_wait_seconds"] = int(body["longest_wait_seconds"])
    return json.dumps(body, separators=(",", ":"))  # key order is fixed by snapshot_entries


def encode(entry: Mapping[str, Any]) -> dict[str, str]:
    """Redis hash fields: every value JSON-encoded (a string field is quoted, null is 'null')."""
    return {k: json.dumps(v, separators=(",", ":")) for k, v in entry.items()}


def decode(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The inverse of `encode`, for bytes or str replies."""
    out = {}
    for k, v in fields.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


async def read_snapshot(client, prefix: str = "kpi") -> list[dict[str, Any]]:
    """The whole center in one round trip: every listed queue's fields, plus ``confirmed_at_ms``.

    ``client`` is a ``redis.asyncio.Redis``. Members whose hash has expired are left out.
    """
    members = await client.zrange(f"{prefix}:queues", 0, -1, withscores=True)
    if not members:
        return []
    keys = [m.decode() if isinstance(m, bytes) else m for m, _ in members]
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        hashes = await pipe.execute()
    out = []
    for key, (_m, score), fields in zip(keys, members, hashes):
        if not fields:
            continue
        entry = decode(fields)
        entry["key"] = key
        entry["confirmed_at_ms"] = int(score)
        out.append(entry)
    out.sort(key=lambda e: (str(e.get("queue_id")), str(e.get("channel"))))
    return out


# -- the writer --------------------------------------------------------------------------------------

class RedisSnapshot:
    """Hands snapshots from the worker's timer to a background writer; never blocks the caller.

    ``offer(books)`` (from the timer) computes the entries and keeps only the latest; ``run()``
    (a task for the life of the worker) writes them. ``up``, ``writes``, ``errors`` are read by
    the Prometheus collector.
    """

    def __init__(self, url: str, owner: str | None = None, *, prefix: str = "kpi",
                 ttl_seconds: int = TTL_SECONDS, refresh_seconds: float = REFRESH_SECONDS,
                 backoff: tuple[float, ...] = BACKOFF_SECONDS, timeout: float = 1.0, client=None) -> None:
        self.url = url
        self.owner = owner or default_owner()
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.refresh_seconds = refresh_seconds
        self.backoff = backoff
        self.timeout = timeout
        self.up = False
        self.writes = 0        # queue hashes written
        self.publishes = 0     # change messages published
        self.errors = 0        # failed write attempts
        self._client = client
        self._pending: dict[str, dict[str, Any]] | None = None
        self._wake = asyncio.Event()
        self._written: dict[str, tuple[str, float]] = {}  # key -> (digest, monotonic time written)
        self._failures = 0
        self._retry_at = 0.0
        self._down_logged = False
        self._ever_up = False

    # -- the timer's side ---------------------------------------------------------------------
    def offer(self, books: Mapping[int, "QueueBook"], wall_ms: int | None = None) -> None:
        """Compute the snapshot of ``books`` now and hand it to the writer (replacing an unsent one)."""
        if time.monotonic() < self._retry_at:
            return  # Redis is away and not due for a retry: do not even compute
        self._pending = snapshot_entries(books, snapshot_now(books.values(), wall_ms), self.owner, self.prefix)
        self._wake.set()

    # -- the writer task ----------------------------------------------------------------------
    def _make_client(self):
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside the client: the backoff is ours, and a dead Redis must fail fast.
        return Redis.from_url(self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                              retry=Retry(NoBackoff(), 0), health_check_interval=0)

    async def run(self) -> None:
        """Write whatever the timer offers, until cancelled (the worker stops)."""
        if self._client is None:
            self._client = self._make_client()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                entries, self._pending = self._pending, None
                if entries is None:
                    continue
                await self.write_once(entries)
        finally:
            await self.close()

    async def write_once(self, entries: dict[str, dict[str, Any]]) -> bool:
        """One attempt; on failure mark Redis down (logged once) and schedule the next try."""
        if self._client is None:
            self._client = self._make_client()
        catch_up = not self.up
        try:
            n = await asyncio.wait_for(self._write(entries, full=catch_up), timeout=self.timeout * 3)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # redis.ConnectionError, TimeoutError, OSError, a refused AUTH ...
            self._went_down(exc)
            try:  # a half-read connection must not be reused: the next try reconnects
                await asyncio.wait_for(self._client.connection_pool.disconnect(), timeout=self.timeout)
            except Exception:
                pass
            return False
        if catch_up:
            if self._down_logged:
                log.warning("Redis at %s is back: wrote a full snapshot of %d queue(s)",
                            redis_location(self.url), n)
            elif not self._ever_up:
                log.info("live snapshot to Redis at %s: %d queue(s)", redis_location(self.url), n)
        self.up, self._ever_up, self._down_logged = True, True, False
        self._failures, self._retry_at = 0, 0.0
        return True

    async def _write(self, entries: dict[str, dict[str, Any]], full: bool) -> int:
        now_mono = time.monotonic()
        wall_ms = int(time.time() * 1000)
        # Queues this worker no longer owns: forget them, so that owning them again means a full write.
        for key in [k for k in self._written if k not in entries]:
            del self._written[key]
        changed, refresh, digests = [], [], {}
        for key, entry in entries.items():
            d = digest(entry)
            digests[key] = d
            seen = self._written.get(key)
            if full or seen is None or seen[0] != d:
                changed.append(key)
            elif now_mono - seen[1] >= self.refresh_seconds:
                refresh.append(key)
        zset = f"{self.prefix}:queues"
        async with self._client.pipeline(transaction=True) as pipe:
            for key in changed + refresh:
                pipe.delete(key)  # replace the whole hash atomically (MULTI): no field outlives a layout change
                pipe.hset(key, mapping=encode({**entries[key], "updated_at_ms": wall_ms}))
                pipe.expire(key, self.ttl_seconds)
            if entries:
                pipe.zadd(zset, {key: wall_ms for key in entries})
            pipe.zremrangebyscore(zset, "-inf", f"({wall_ms - self.ttl_seconds * 1000}")
            if changed:
                pipe.publish(f"{self.prefix}:changes", json.dumps(
                    {"owner": self.owner, "updated_at_ms": wall_ms, "full": full, "keys": changed},
                    separators=(",", ":")))
            await pipe.execute()
        for key in changed + refresh:
            self._written[key] = (digests[key], now_mono)
        self.writes += len(changed) + len(refresh)
        self.publishes += bool(changed)
        return len(changed)

    def _went_down(self, exc: BaseException) -> None:
        self.errors += 1
        self.up = False
        self._written.clear()  # whatever Redis holds now is unknown: the next success writes everything
        delay = self.backoff[min(self._failures, len(self.backoff) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay
        if not self._down_logged:
            self._down_logged = True
            log.warning("Redis at %s is unreachable (%s: %s): the processor keeps computing; the live "
                        "snapshot is retried in the background and written in full when Redis is back",
                        redis_location(self.url), type(exc).__name__, exc)
        else:
            log.debug("Redis still unreachable (%s); next try in %.1fs", exc, delay)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await asyncio.wait_for(client.aclose(), timeout=self.timeout)
            except Exception:  # closing a connection to a dead server: nothing to do
                pass
