"""Redis with a password and TLS (client certificate required), configured through `redis_url` only.

A throw-away CA, server and client certificate (tests/tls.py: openssl), and Debian's redis-server
listening on TLS only with `requirepass`. The worker's snapshot writer (`processor.snapshot.RedisSnapshot`)
writes through a `rediss://:PASSWORD@…?ssl_ca_certs=…&ssl_certfile=…&ssl_keyfile=…` URL taken
from the settings (`KPI_REDIS_URL`), and the wallboard reads it back through the same URL; a
wrong password, an unknown CA and a plain `redis://` connection are all refused, and no log line
shows the password.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from processor.config import load_settings
from processor.services._proc import free_port
from processor.snapshot import RedisSnapshot, read_snapshot, snapshot_entries
from processor.wallboard.server import Wallboard
from tests.coretools import Contact, at, by_time, run
from tests.tls import make_pki

pytestmark = pytest.mark.integration

PASSWORD = "tls p@ss:w/rd#1"  # characters that must be percent-encoded in the URL


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("redis-tls"))
    d = pki.dir
    port = free_port()
    binary = "/usr/bin/redis-server" if shutil.which("/usr/bin/redis-server") else "redis-server"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
         "--tls-ca-cert-file", str(pki.ca),
         "--tls-auth-clients", "yes", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
         "--dir", str(d), "--logfile", "redis.log"],
        cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while "Ready to accept connections" not in ((d / "redis.log").read_text() if (d / "redis.log").exists() else ""):
            assert proc.poll() is None, (d / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server (TLS) did not start"
            time.sleep(0.05)
        tls = f"ssl_ca_certs={pki.ca}&ssl_certfile={pki.client_cert}&ssl_keyfile={pki.client_key}"
        yield {"port": port, "dir": d, "tls": tls,
               "url": f"rediss://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0?{tls}&ssl_cert_reqs=required"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _entries():
    c = Contact("c1", created="10:00:00").queued("Q1", "10:00:01").answered("Q1", "10:00:11")
    book = run(by_time(c)).pipeline.queues
    return snapshot_entries({0: book}, now_ms=at("10:05:00"), owner="tls-test")


def test_snapshot_and_wallboard_over_tls_with_a_password(tls_redis, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KPI_REDIS_URL", tls_redis["url"])
    url = load_settings().redis_url.get_secret_value()  # as the worker and `kpi wallboard` get it
    entries = _entries()
    assert entries

    async def scenario():
        writer = RedisSnapshot(url, owner="tls-test", timeout=2.0)
        try:
            assert await writer.write_once(entries) is True
        finally:
            await writer.close()
        from redis.asyncio import Redis
        client = Redis.from_url(url, socket_timeout=2)
        try:
            got = await read_snapshot(client)
        finally:
            await client.aclose()
        assert [e["key"] for e in got] == sorted(entries)
        board = Wallboard(url, timeout=2.0)
        async with TestClient(TestServer(board.app())) as http:
            health = await (await http.get("/healthz")).json()
            snap = await (await http.get("/api/snapshot")).json()
        assert health["redis_up"] is True and health["queues"] == len(entries)
        assert PASSWORD not in str(snap) and quote(PASSWORD, safe="") not in str(snap)
        return got

    got = asyncio.run(scenario())
    assert got[0]["queue_id"] == "Q1" and got[0]["window:today"]["answered"] == 1
    assert PASSWORD not in caplog.text and quote(PASSWORD, safe="") not in caplog.text


@pytest.mark.parametrize("case", ["wrong password", "unknown CA", "no client certificate", "plain redis://"])
def test_tls_redis_refuses_the_wrong_client(tls_redis, case, caplog):
    caplog.set_level(logging.DEBUG)
    port, d, tls = tls_redis["port"], tls_redis["dir"], tls_redis["tls"]
    url = {
        "wrong password": f"rediss://:wrong-{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0?{tls}",
        "unknown CA": f"rediss://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0?ssl_certfile={d / 'client.pem'}"
                      f"&ssl_keyfile={d / 'client.key'}",
        "no client certificate": f"rediss://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0?ssl_ca_certs={d / 'ca.pem'}",
        "plain redis://": f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/0",
    }[case]

    async def attempt():
        writer = RedisSnapshot(url, owner="tls-test", timeout=1.0)
        try:
            return await writer.write_once(_entries()), writer.errors
        finally:
            await writer.close()

    ok, errors = asyncio.run(attempt())
    assert ok is False and errors == 1
    assert "unreachable" in caplog.text
    assert PASSWORD not in caplog.text and quote(PASSWORD, safe="") not in caplog.text
