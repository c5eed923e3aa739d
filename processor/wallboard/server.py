"""`kpi wallboard`: an aiohttp server that reads the live snapshot from Redis and pushes it to browsers.

Routes:
  GET /              the page (static/index.html, plain JS and CSS, no build step, nothing external)
  GET /static/...    its script and style sheet
  GET /events        Server-Sent Events: ``state`` (everything, on connect and when the set of queues
                     changes), ``update`` (the queues whose figures changed), ``heartbeat`` (every
                     ``heartbeat_seconds``: server time, Redis reachability, each queue's confirmation time)
  GET /api/snapshot  the same state as JSON, for scripts and curl
  GET /healthz       {"status", "redis_up", "queues", "clients"}

Changes arrive on the ``kpi:changes`` channel (pub/sub) and are pushed at once; a full re-read every
``resync_seconds`` catches anything a lost message or a Redis restart left out. Staleness is judged
on the server's clock (``confirmed_at_ms`` of each queue against ``server_ms``), so a TV whose clock
is off still shows the right age.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..snapshot import decode, read_snapshot, redis_location

log = logging.getLogger("processor.wallboard")

STATIC = Path(__file__).parent / "static"
CLOSE = object()   # sentinel: end a client's stream
RESYNC = object()  # sentinel: the client fell behind, send it the whole state


def _now_ms() -> int:
    return int(time.time() * 1000)


class Wallboard:
    def __init__(self, redis_url: str, *, prefix: str = "kpi", stale_after: float = 10.0,
                 heartbeat_seconds: float = 2.0, resync_seconds: float = 1.0, timeout: float = 1.0) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.stale_after = stale_after
        self.heartbeat_seconds = heartbeat_seconds
        self.resync_seconds = resync_seconds
        self.timeout = timeout
        self.queues: dict[str, dict[str, Any]] = {}  # hash key -> entry (as read_snapshot returns it)
        self.redis_up = False
        self.clients: set[asyncio.Queue] = set()
        self._client = None
        self._tasks: list[asyncio.Task] = []
        self._down_logged = False
        self._lock = asyncio.Lock()

    # -- Redis -----------------------------------------------------------------------------------
    def _make_client(self):
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Redis.from_url(self.redis_url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                              retry=Retry(NoBackoff(), 0), health_check_interval=0)

    def _mark(self, up: bool, exc: BaseException | None = None) -> None:
        if up and not self.redis_up and self._down_logged:
            log.warning("Redis at %s is reachable again", redis_location(self.redis_url))
            self._down_logged = False
        if not up and not self._down_logged:
            log.warning("Redis at %s is unreachable (%s); retrying", redis_location(self.redis_url), exc)
            self._down_logged = True
        self.redis_up = up

    async def resync(self) -> None:
        """Re-read everything; push what changed (or the whole state when queues came or went)."""
        async with self._lock:
            try:
                entries = await asyncio.wait_for(read_snapshot(self._client, self.prefix), timeout=self.timeout * 3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._mark(False, exc)
                await self._drop_connections()
                return
            self._mark(True)
            fresh = {e["key"]: e for e in entries}
            if set(fresh) != set(self.queues):
                self.queues = fresh
                self.broadcast("state", self.state())
                return
            changed = [e for k, e in fresh.items() if _figures(e) != _figures(self.queues[k])]
            self.queues = fresh
            if changed:
                self.broadcast("update", {"server_ms": _now_ms(), "queues": changed})

    async def refresh_keys(self, keys: list[str]) -> None:
        """Read the named hashes (a change message) and push them."""
        async with self._lock:
            zset = f"{self.prefix}:queues"
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                    pipe.zscore(zset, key)
                replies = await asyncio.wait_for(pipe.execute(), timeout=self.timeout * 3)
            changed, appeared = [], False
            for key, fields, score in zip(keys, replies[0::2], replies[1::2]):
                if not fields:
                    continue
                entry = decode(fields)
                entry["key"] = key
                entry["confirmed_at_ms"] = int(score) if score is not None else entry.get("updated_at_ms", 0)
                appeared |= key not in self.queues
                self.queues[key] = entry
                changed.append(entry)
            if appeared:
                self.broadcast("state", self.state())
            elif changed:
                self.broadcast("update", {"server_ms": _now_ms(), "queues": changed})

    async def _drop_connections(self) -> None:
        try:
            await asyncio.wait_for(self._client.connection_pool.disconnect(), timeout=self.timeout)
        except Exception:
            pass

    async def _listen(self) -> None:
        """Subscribe to the change channel; on any error re-subscribe after a short backoff."""
        delay = 0.5
        channel = f"{self.prefix}:changes"
        while True:
            pubsub = self._client.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(channel), timeout=self.timeout * 3)
                await self.resync()  # whatever happened while we were not subscribed
                delay = 0.5
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    try:
                        keys = [str(k) for k in json.loads(msg["data"])["keys"]]
                    except (ValueError, KeyError, TypeError):
                        continue
                    await self.refresh_keys(keys)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._mark(False, exc)
            finally:
                try:
                    await asyncio.wait_for(pubsub.aclose(), timeout=self.timeout)
                except Exception:
                    pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            await self.resync()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            self.broadcast("heartbeat", {
                "server_ms": _now_ms(), "redis_up": self.redis_up,
                "confirmed": {k: e.get("confirmed_at_ms") for k, e in self.queues.items()}})

    # -- browsers --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"server_ms": _now_ms(), "redis_up": self.redis_up, "stale_after_seconds": self.stale_after,
                "heartbeat_seconds": self.heartbeat_seconds, "queues": list(self.queues.values())}

    def broadcast(self, event: str, data: dict[str, Any]) -> None:
        message = _sse(event, data)
        for q in list(self.clients):
            if q.full():  # a client that cannot keep up gets the whole state instead of a backlog
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(RESYNC)
            else:
                q.put_nowait(message)

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.clients.add(q)
        try:
            await resp.write(b"retry: 1000\n\n" + _sse("state", self.state()))
            while True:
                item = await q.get()
                if item is CLOSE:
                    break
                await resp.write(_sse("state", self.state()) if item is RESYNC else item)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.clients.discard(q)
        return resp

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def snapshot(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "redis_up": self.redis_up, "queues": len(self.queues),
                                  "clients": len(self.clients)})

    # -- life cycle ------------------------------------------------------------------------------
    async def on_startup(self, app: web.Application) -> None:
        self._client = self._make_client()
        await self.resync()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(f()) for f in (self._listen, self._poll, self._heartbeat)]

    async def on_shutdown(self, app: web.Application) -> None:
        for q in list(self.clients):  # end the open streams so that shutdown does not wait on them
            while not q.empty():
                q.get_nowait()
            q.put_nowait(CLOSE)

    async def on_cleanup(self, app: web.Application) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            try:
                await asyncio.wait_for(self._client.aclose(), timeout=self.timeout)
            except Exception:
                pass

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/snapshot", self.snapshot)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_static("/static/", STATIC)
        app.on_startup.append(self.on_startup)
        app.on_shutdown.append(self.on_shutdown)
        app.on_cleanup.append(self.on_cleanup)
        return app


def _figures(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "confirmed_at_ms"}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def run(redis_url: str, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
    board = Wallboard(redis_url, **options)
    print(f"wallboard at http://{host}:{port}/ reading Redis at {redis_location(redis_url)}", flush=True)
    web.run_app(board.app(), host=host, port=port, shutdown_timeout=2.0, print=None, access_log=None)
