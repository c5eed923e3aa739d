"""The worker's two pages: /metrics (the registry, rendered at scrape time) and /healthz.

Faust's own /router and /table views would show table contents (contacts' events, customer and
agent ids) on the metrics port: they are switched off in create_app; only these two are served.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from .runtime import Worker


def install(w: Worker) -> None:
    rt, holds = w.rt, w.holds

    async def metrics(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition type goes in as a header.
        with holds.step("/metrics"):
            body = generate_latest(rt.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(web, request):
        return web.json(health_page(rt))

    w.app.page("/metrics", name="metrics")(metrics)
    w.app.page("/healthz", name="healthz")(healthz)


def health_page(rt) -> dict:
    """What /healthz answers: the worker's clocks and uptime."""
    return {"status": "ok", "stream_time_ms": rt.stream_ms, "watermark_ms": rt.watermark_ms,
            "uptime_seconds": round(time.monotonic() - rt.health.started, 1)}
