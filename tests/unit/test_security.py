"""Security: secrets stay secret, the web endpoints are read-only, input size is bounded.

- A SASL password, the password of the Kafka client key (mutual TLS) and a Redis URL with a
  password never appear in the settings' repr / str / model_dump / JSON, in configuration errors
  (pydantic's own included), in the start-up line of `kpi worker`, in Faust's broker credentials,
  in /metrics or /healthz, in what the snapshot writer and the wallboard log when Redis is
  unreachable, nor in kafka-python's DEBUG log of its admin client configuration.
- The client certificate reaches all three kinds of Kafka client (Faust, kafka-python's admin
  client, plain aiokafka) through the one TLS context: each presents it in a TLS handshake.
- The wallboard (aiohttp, in-process) and the worker's web server (Faust's aiohttp app, built by
  `create_app` without a broker) answer GET / HEAD only: POST, PUT, PATCH, DELETE get 405.
- The decoder's size limit (`too_large`) is what docs/contract.md#the-contract documents.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import ssl

import pytest
from aiohttp.test_utils import TestClient, TestServer

from processor import cli, deadletter
from processor.config import ConfigError, load_settings
from processor.decode import MAX_EVENT_BYTES, BadEvent, decode
from processor.snapshot import RedisSnapshot, redis_location
from tests.tls import Pki, encrypt_key, make_pki

KAFKA_SECRET = "kafka-Pw-7f3a9c1e"
KEY_SECRET = "key-Pw-3b8e6d21"      # the Kafka client key's password
WRONG_KEY_SECRET = "key-Pw-wrong-94c0"
REDIS_SECRET = "redis-Pw-0b5d2e84"
# Nothing listens on port 1: every connection attempt fails at once.
REDIS_URL = f"rediss://kpi:{REDIS_SECRET}@127.0.0.1:1/0?ssl_cert_reqs=required"
SECRETS = (KAFKA_SECRET, KEY_SECRET, WRONG_KEY_SECRET, REDIS_SECRET)
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def clean(text: str) -> bool:
    return not any(s in text for s in SECRETS)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    """A CA, a server and a client certificate; the client key also encrypted with KEY_SECRET."""
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    encrypt_key(pki.client_key, pki.dir / "client.enc.key", KEY_SECRET)
    return pki


def presented_certificate(client: ssl.SSLContext, pki: Pki) -> str:
    """A TLS handshake (in memory) of ``client`` with a server that requires a client certificate
    signed by the CA: the common name of the certificate the client presented."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    server.load_verify_locations(pki.ca)
    server.verify_mode = ssl.CERT_REQUIRED
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(10):
        for name, side in (("client", c), ("server", s)):
            if name not in done:
                try:
                    side.do_handshake()
                    done.add(name)
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if len(done) == 2:
            return dict(pair[0] for pair in s.getpeercert()["subject"])["commonName"]
    raise AssertionError(f"handshake did not finish ({done})")


@pytest.fixture
def secret_env(monkeypatch, tmp_path, pki):
    import os
    for name in list(os.environ):
        if name.upper().startswith("KPI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KPI_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KPI_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KPI_KAFKA__SASL_USERNAME", "kpi")
    monkeypatch.setenv("KPI_KAFKA__SASL_PASSWORD", KAFKA_SECRET)
    monkeypatch.setenv("KPI_KAFKA__SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("KPI_KAFKA__SSL_CERTFILE", str(pki.client_cert))
    monkeypatch.setenv("KPI_KAFKA__SSL_KEYFILE", str(pki.dir / "client.enc.key"))
    monkeypatch.setenv("KPI_KAFKA__SSL_KEY_PASSWORD", KEY_SECRET)
    monkeypatch.setenv("KPI_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("KPI_STORE", "memory://")
    monkeypatch.setenv("KPI_DATA_DIR", str(tmp_path / "data"))
    return load_settings()


# ------------------------------------------------------------------------------ secrets

def test_settings_carry_the_secrets_but_never_show_them(secret_env):
    s = secret_env
    assert s.kafka.sasl_password.get_secret_value() == KAFKA_SECRET
    assert s.kafka.ssl_key_password.get_secret_value() == KEY_SECRET
    assert s.redis_url.get_secret_value() == REDIS_URL
    for text in (repr(s), str(s), repr(s.kafka), str(s.model_dump()), s.model_dump_json(),
                 json.dumps(s.model_dump(mode="json")), repr(s.engine())):
        assert clean(text), text


def test_configuration_errors_do_not_echo_secrets(secret_env, monkeypatch, pki):
    monkeypatch.setenv("KPI_WEB_PORT", "99999")  # another field is wrong: the secrets are still set
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "web_port" in str(info.value) and clean(str(info.value))
    # a Redis URL that is not one: named, not echoed
    monkeypatch.delenv("KPI_WEB_PORT")
    for bad in (f"http://:{REDIS_SECRET}@127.0.0.1:6379/0", f"redis://:{REDIS_SECRET}@127.0.0.1:port/0"):
        monkeypatch.setenv("KPI_REDIS_URL", bad)
        with pytest.raises(ConfigError) as info:
            load_settings()
        assert "redis_url" in str(info.value) and clean(str(info.value)), str(info.value)
    # a wrong key password: said so, not shown
    monkeypatch.setenv("KPI_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("KPI_KAFKA__SSL_KEY_PASSWORD", WRONG_KEY_SECRET)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "ssl_key_password is wrong" in str(info.value) and clean(str(info.value)), str(info.value)
    # a malformed JSON mapping holding the passwords
    monkeypatch.delenv("KPI_KAFKA__SASL_PASSWORD")
    monkeypatch.delenv("KPI_KAFKA__SSL_KEY_PASSWORD")
    monkeypatch.setenv("KPI_KAFKA", '{"sasl_password": "' + KAFKA_SECRET + '", "ssl_key_password": "'
                       + KEY_SECRET + '", ')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert clean(str(info.value)), str(info.value)
    # pydantic's own error (Settings built directly, as tests and tools do) repeats no input either
    from pydantic import ValidationError

    from processor.config import Settings

    monkeypatch.delenv("KPI_KAFKA")
    kafka = {"security_protocol": "SASL_SSL", "sasl_password": KAFKA_SECRET, "ssl_certfile": str(pki.client_cert),
             "ssl_keyfile": str(pki.dir / "client.enc.key"), "ssl_cafile": str(pki.ca)}
    for bad in ({"ssl_key_password": WRONG_KEY_SECRET}, {"ssl_key_password": KEY_SECRET, "partitions": 0},
                {"ssl_key_password": KEY_SECRET, "bootstrap": ["not", "a", "string"]}):
        with pytest.raises(ValidationError) as info:
            Settings(kafka={**kafka, **bad}, redis_url=REDIS_URL.replace("rediss", "http"))
        assert "kafka" in str(info.value) and clean(str(info.value)), str(info.value)


def test_redis_log_lines_name_the_server_not_the_password():
    for url in (REDIS_URL, f"redis://:{REDIS_SECRET}@redis:6379/0", f"redis://default:{REDIS_SECRET}@redis/2",
                f"rediss://redis:6380/0?password={REDIS_SECRET}"):
        where = redis_location(url)
        assert clean(where) and where.startswith(("127.0.0.1:1", "redis:")), where


def test_kpi_worker_start_line_and_faust_credentials_hide_secrets(secret_env, pki, monkeypatch, capsys, caplog):
    import faust.worker

    import processor.errors
    import processor.topics

    created = {}

    class FakeWorker:  # no broker here: stop before Faust would connect
        crashed = False  # read by the crash-exit watch (processor/crash_exit.py)

        def __init__(self, app, **kw):
            created["app"] = app

        def execute_from_commandline(self):
            created["ran"] = True

    monkeypatch.setattr(processor.topics, "ensure_topics", lambda s, **kw: [])
    monkeypatch.setattr(processor.errors, "wait_for_broker", lambda *a, **k: None)  # no broker here either
    monkeypatch.setattr(faust.worker, "Worker", FakeWorker)
    caplog.set_level(logging.DEBUG)
    assert cli.main(["worker"]) == 0
    err = capsys.readouterr().err
    assert "worker contact-kpi: consuming contact-events on 127.0.0.1:9092" in err and created["ran"]
    app = created["app"]
    creds = app.conf.broker_credentials  # SASL is wired through, secret included ...
    assert (creds.username, creds.password, creds.mechanism.value) == ("kpi", KAFKA_SECRET, "SCRAM-SHA-512")
    assert presented_certificate(creds.ssl_context, pki) == "kpi-worker"  # ... and the client certificate
    assert app.kpi_runtime.snapshot.url == REDIS_URL
    # ... and shown nowhere
    for text in (err, caplog.text, repr(creds), repr(app.conf.broker_credentials), repr(app)):
        assert clean(text), text


def test_admin_client_debug_log_masks_the_sasl_password(secret_env, pki, monkeypatch, caplog):
    """kafka-python logs its admin client's whole configuration at DEBUG (logger kafka.admin.client):
    the SASL password is masked; the client certificate goes in as a TLS context, so its key
    password is not in that configuration at all."""
    import kafka.admin.client as kac
    from kafka.errors import KafkaError

    import processor.topics

    assert 'log.debug("Starting KafkaAdminClient with configuration: %s", configs)' in inspect.getsource(kac)
    assert kac.log.name == "kafka.admin.client"

    seen = {}

    def admin_client(**configs):  # what kafka-python does first, without a broker to wait 30 s for
        seen.update(configs)
        kac.log.debug("Starting KafkaAdminClient with configuration: %s", configs)
        raise KafkaError("no broker here")

    monkeypatch.setattr(processor.topics, "KafkaAdminClient", admin_client)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaError):
        processor.topics.ensure_topics(secret_env, timeout=0)
    assert "sasl_plain_password" in caplog.text and "**********" in caplog.text
    assert clean(caplog.text), caplog.text
    assert not kac.log.filters  # the mask is removed again
    assert not {"ssl_password", "ssl_keyfile", "ssl_certfile"} & set(seen)
    assert presented_certificate(seen["ssl_context"], pki) == "kpi-worker"


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_every_kafka_client_presents_the_client_certificate(pki, protocol):
    """Faust's credentials, kafka-python's admin options and aiokafka's options: one TLS context
    each, built by KafkaConfig.ssl_context(), which checks the broker against ssl_cafile and
    presents the client certificate (its key decrypted with ssl_key_password)."""
    from processor.topics import faust_credentials
    from processor.config import Settings
    from processor.topics import aiokafka_security, kafka_python_security

    kafka = {"security_protocol": protocol, "ssl_cafile": pki.ca, "ssl_certfile": pki.client_cert,
             "ssl_keyfile": pki.dir / "client.enc.key", "ssl_key_password": KEY_SECRET}
    if protocol == "SASL_SSL":
        kafka |= {"sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "kpi", "sasl_password": KAFKA_SECRET}
    s = Settings(kafka=kafka)
    creds = faust_credentials(s)["broker_credentials"]
    contexts = {"faust": creds.context if protocol == "SSL" else creds.ssl_context,
                "kafka-python": kafka_python_security(s)["ssl_context"], "aiokafka": aiokafka_security(s)["ssl_context"]}
    for client, ctx in contexts.items():
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname, client
        assert presented_certificate(ctx, pki) == "kpi-worker", client
    assert kafka_python_security(s)["security_protocol"] == aiokafka_security(s)["security_protocol"] == protocol
    # without a client certificate the same server refuses the handshake
    bare = Settings(kafka={"security_protocol": protocol, "ssl_cafile": pki.ca}).kafka.ssl_context()
    with pytest.raises(ssl.SSLError):
        presented_certificate(bare, pki)


def test_snapshot_writer_logs_no_secret_when_redis_is_unreachable(caplog):
    caplog.set_level(logging.DEBUG)
    writer = RedisSnapshot(REDIS_URL, owner="w1", timeout=0.5)

    async def attempt():
        try:
            return await writer.write_once({})
        finally:
            await writer.close()

    assert asyncio.run(attempt()) is False
    assert writer.errors == 1 and "unreachable" in caplog.text
    assert "127.0.0.1:1/0" in caplog.text and clean(caplog.text), caplog.text


# ------------------------------------------------------------------------------ read-only web

def _routes(app) -> list[tuple[str, str]]:
    out = []
    for r in app.router.routes():
        info = r.resource.get_info() if r.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        out.append((r.method, path))
    return out


def test_wallboard_serves_reads_only_and_logs_no_secret(caplog):
    from processor.wallboard.server import Wallboard

    caplog.set_level(logging.DEBUG)
    board = Wallboard(REDIS_URL, timeout=0.5, heartbeat_seconds=0.2, resync_seconds=0.2)
    app = board.app()
    methods = {m for m, _ in _routes(app)}
    assert methods <= {"GET", "HEAD"}, _routes(app)

    async def probe():
        async with TestClient(TestServer(app)) as client:
            health = await client.get("/healthz")
            assert health.status == 200
            body = await health.json()
            assert body["status"] == "ok" and body["redis_up"] is False
            snap = await client.get("/api/snapshot")
            assert snap.status == 200 and clean(await snap.text())
            assert (await client.get("/")).status == 200
            for path in ("/", "/events", "/api/snapshot", "/healthz", "/static/wallboard.js", "/static/"):
                for method in WRITES:
                    resp = await client.request(method, path, data=b'{"queues": []}')
                    assert resp.status == 405, (method, path, resp.status)

    asyncio.run(probe())
    assert "unreachable" in caplog.text and clean(caplog.text), caplog.text


def test_worker_web_serves_reads_only_and_shows_no_secret(secret_env):
    """/metrics and /healthz as `create_app` registers them (Faust pages); Faust's own /router and
    /table views, which would show table contents, are switched off."""
    from processor.worker.app import create_app

    app, rt = create_app(secret_env)
    web = app.web
    web.init_server()  # what the worker does at start: Faust's blueprints and our pages
    routes = _routes(web.web_app)
    assert ("GET", "/metrics") in routes and ("GET", "/healthz") in routes
    assert {m for m, _ in routes} <= {"GET", "HEAD"}, routes
    assert not [p for _, p in routes if p.startswith(("/router", "/table"))], routes

    async def probe():
        async with TestClient(TestServer(web.web_app)) as client:
            metrics = await client.get("/metrics")
            text = await metrics.text()
            assert metrics.status == 200 and "contact_queue_waiting" in text and clean(text)
            health = await client.get("/healthz")
            assert health.status == 200 and (await health.json())["status"] == "ok"
            for path in sorted({p for _, p in routes if "{" not in p}):
                for method in WRITES:
                    resp = await client.request(method, path, data=b"x=1")
                    assert resp.status == 405, (method, path, resp.status)

    asyncio.run(probe())


# ------------------------------------------------------------------------------ input size

def test_input_size_limit_is_enforced_and_documented():
    from pathlib import Path

    event = {"event_id": "e-1", "type": "contact.resolved", "ts": "2026-11-23T09:00:05.120Z", "contact_id": "c-1"}
    pad = MAX_EVENT_BYTES - len(json.dumps({**event, "x": ""}))
    assert decode(json.dumps({**event, "x": "y" * pad}).encode()).event_id == "e-1"  # exactly the limit
    for raw in (json.dumps({**event, "x": "y" * (pad + 1)}).encode(), b" " * (10 << 20)):
        with pytest.raises(BadEvent) as info:
            decode(raw)
        assert info.value.reason == "too_large"
    contract = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    assert MAX_EVENT_BYTES == 64 * 1024 and "64 KiB" in contract and "too_large" in contract


def test_a_dead_letter_fits_in_one_kafka_message(secret_env):
    """Any message the broker accepted (default limit about 1 MB) fits, dead-lettered, in one message of
    the producer and of the dead-letter topic, however much escaping blows it up."""
    from processor.worker.app import create_app
    from processor.config import Settings
    from processor.topics import DEAD_LETTER_MAX_MESSAGE_BYTES, topic_configs_for

    app, _ = create_app(secret_env)
    limit = app.conf.producer_max_request_size
    s = Settings()
    assert topic_configs_for(s, s.kafka.dead_letter_topic) == {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)}
    assert DEAD_LETTER_MAX_MESSAGE_BYTES > limit
    for raw in (b"x" * 990_000, b'"' * 600_000, b"\x01" * 1_000_000, b"\xff" * 1_000_000):
        with pytest.raises(BadEvent) as info:
            decode(raw)
        record = deadletter.dumps(deadletter.from_raw(info.value.reason, info.value.detail, raw))
        assert len(record) < limit, (len(raw), len(record), limit)


def test_kpi_produce_uses_the_kafka_security_settings(monkeypatch):
    """`kpi produce` / `kpi simulate` connect as the worker does (SASL over TLS here), not in plain text."""
    import asyncio as aio
    import ssl

    import aiokafka

    from processor import cli, errors, topics
    from processor.config import Settings

    seen = {}

    class FakeProducer:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        async def start(self):
            pass

        async def send(self, *a, **k):
            pass

        async def flush(self):
            pass

        async def stop(self):
            pass

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(topics, "ensure_topics", lambda settings, **kw: [])
    monkeypatch.setattr(errors, "wait_for_broker", lambda *a, **k: None)  # no broker to wait for
    s = Settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                        "sasl_username": "kpi", "sasl_password": "s3cret-pw"})
    ev = {"event_id": "e", "type": "contact.resolved", "ts": "2026-11-23T10:00:00Z", "contact_id": "c"}
    assert aio.run(cli._produce([ev], s, None, None, 0)) == 0  # exit code
    assert seen["security_protocol"] == "SASL_SSL" and seen["sasl_mechanism"] == "SCRAM-SHA-256"
    assert seen["sasl_plain_username"] == "kpi" and seen["sasl_plain_password"] == "s3cret-pw"
    assert isinstance(seen["ssl_context"], ssl.SSLContext)
    assert topics.aiokafka_security(Settings()) == {}
