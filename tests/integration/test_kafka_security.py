"""Kafka security on a real broker: mutual TLS, a client without a certificate refused, SASL_SSL
with SCRAM-SHA-256.

One Apache Kafka broker for the module (`ApacheKafka` with `tls` and `scram_users`): its own
PLAINTEXT listener, an SSL listener that requires a client certificate (`ssl.client.auth=required`)
and a SASL_SSL listener with SCRAM-SHA-256, the certificates made at test time (tests/tls.py).
Each worker test connects *only* to a secured listener with the settings a deployment would
set (KPI_KAFKA__*): the topics are created (kafka-python), the shared input is produced the way
`kpi produce` does it (aiokafka), a `kpi worker` (Faust) processes it, and its gauges and the
rollup topic read back over the same listener equal `kpi replay`; neither the client key's
password nor the SASL password is in the worker's log or on its /metrics and /healthz.
"""
from __future__ import annotations

import asyncio
import time
import urllib.request

import pytest
from aiokafka.errors import KafkaConnectionError
from kafka.errors import KafkaError

from processor import cli
from processor.config import Settings
from processor.services import ApacheKafka, BrokerTls, KpiWorker
from processor.topics import aiokafka_security, ensure_topics, processor_topics
from scenario import assert_gauges_equal_replay, assert_rollups_equal_replay, caught_up, unique_topics
from tests.tls import encrypt_key, make_pki, pem_keystore

pytestmark = pytest.mark.integration

KEY_PASSWORD = "key-Pw-81d7c3e2"          # the worker's client key is encrypted with it
SCRAM_PASSWORD = "scram-Pw-6a02f94b"      # the SCRAM-SHA-256 user kpi
BROKER_KEY_PASSWORD = "broker-Pw-1c4e77"  # the broker's own PEM key store
SECRETS = (KEY_PASSWORD, SCRAM_PASSWORD, BROKER_KEY_PASSWORD)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory):
    d = tmp_path_factory.mktemp("kafka-secure")
    pki = make_pki(d / "pki")
    encrypt_key(pki.client_key, pki.dir / "client.enc.key", KEY_PASSWORD)
    keystore = pem_keystore(pki.server_key, pki.server_cert, pki.dir / "broker.keystore.pem", BROKER_KEY_PASSWORD,
                            chain=(pki.ca,))
    broker = ApacheKafka(d / "data", tls=BrokerTls(keystore, pki.ca, BROKER_KEY_PASSWORD),
                         scram_users={"kpi": SCRAM_PASSWORD})
    t0 = time.monotonic()
    broker.start(timeout=120)
    print(f"\nApache Kafka with SSL {broker.ssl_bootstrap} (client certificate required) and SASL_SSL "
          f"{broker.sasl_ssl_bootstrap} ready in {time.monotonic() - t0:.1f}s")
    try:
        yield broker, pki
    finally:
        broker.stop()


def mtls_env(broker: ApacheKafka, pki) -> dict[str, str]:
    return {"KPI_KAFKA__BOOTSTRAP": broker.ssl_bootstrap, "KPI_KAFKA__SECURITY_PROTOCOL": "SSL",
            "KPI_KAFKA__SSL_CAFILE": str(pki.ca), "KPI_KAFKA__SSL_CERTFILE": str(pki.client_cert),
            "KPI_KAFKA__SSL_KEYFILE": str(pki.dir / "client.enc.key"), "KPI_KAFKA__SSL_KEY_PASSWORD": KEY_PASSWORD}


def scram_env(broker: ApacheKafka, pki, password: str = SCRAM_PASSWORD) -> dict[str, str]:
    return {"KPI_KAFKA__BOOTSTRAP": broker.sasl_ssl_bootstrap, "KPI_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "KPI_KAFKA__SASL_MECHANISM": "SCRAM-SHA-256", "KPI_KAFKA__SASL_USERNAME": "kpi",
            "KPI_KAFKA__SASL_PASSWORD": password, "KPI_KAFKA__SSL_CAFILE": str(pki.ca)}


def settings_of(env: dict[str, str]) -> Settings:
    """The settings the worker reads from these KPI_* variables (the Kafka part and the app id)."""
    kafka = {k.removeprefix("KPI_KAFKA__").lower(): v for k, v in env.items() if k.startswith("KPI_KAFKA__")}
    return Settings(app_id=env.get("KPI_APP_ID", "contact-kpi"), kafka=kafka)


async def metadata(settings: Settings) -> list[tuple[str, int]]:
    """The brokers a plain aiokafka client with these settings is told about (raises when refused)."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=settings.kafka.bootstrap, request_timeout_ms=5000,
                            client_id="kpi-security-test", **aiokafka_security(settings))
    try:
        await client.bootstrap()
        return sorted((b.host, b.port) for b in (await client.fetch_all_metadata()).brokers())
    finally:
        await client.close()


def worker_processes_the_feed(security_env: dict[str, str], feed, work) -> None:
    """Topics, input, worker and rollups over the secured listener of ``security_env`` only."""
    env = unique_topics() | security_env
    settings = settings_of(env)
    bootstrap = settings.kafka.bootstrap
    assert sorted(ensure_topics(settings)) == sorted(processor_topics(settings))  # kafka-python, secured
    t0 = time.monotonic()
    assert asyncio.run(cli._produce(feed["events"], settings, None, None, 0)) == 0  # `kpi produce`'s path
    last_event_s = feed["pipeline"].contacts.stream_ms / 1000
    with KpiWorker(bootstrap, work_dir=work, config=feed["config"], env=env) as worker:
        s = worker.wait_for(lambda s: caught_up(s, last_event_s), timeout=180, what="caught up over " + bootstrap)
        print(f"\n{settings.kafka.security_protocol}: {len(feed['events'])} events produced and processed "
              f"in {time.monotonic() - t0:.1f}s")
        assert s["kpi_events_processed_total"] == len(feed["events"])
        assert_gauges_equal_replay(s, feed)
        pages = [urllib.request.urlopen(worker.url + page, timeout=5).read().decode()
                 for page in ("/metrics", "/healthz")]
    records, keys = assert_rollups_equal_replay(bootstrap, env, feed, security=aiokafka_security(settings))
    print(f"rollups read back over {settings.kafka.security_protocol}: {records} records, {keys} keys, equal to replay")
    log = worker.log_path.read_text()
    assert "consuming" in log and bootstrap in log  # the start-up line: this worker's log, over this listener
    for text in (log, *pages):
        assert not [secret for secret in SECRETS if secret in text]


def test_worker_with_a_client_certificate_on_the_mtls_listener(secure_kafka, feed, tmp_path):
    broker, pki = secure_kafka
    worker_processes_the_feed(mtls_env(broker, pki), feed, tmp_path / "worker")


def test_the_mtls_listener_refuses_a_client_without_a_certificate(secure_kafka):
    broker, pki = secure_kafka
    with_cert = settings_of(mtls_env(broker, pki))
    without = settings_of({k: v for k, v in mtls_env(broker, pki).items()
                           if k.rsplit("__", 1)[1] not in ("SSL_CERTFILE", "SSL_KEYFILE", "SSL_KEY_PASSWORD")})
    assert without.kafka.ssl_certfile is None and without.kafka.ssl_cafile == pki.ca
    assert asyncio.run(metadata(with_cert)) == [("127.0.0.1", broker.ssl_port)]  # the listener answers ...
    with pytest.raises(KafkaConnectionError):  # ... but not without the certificate: aiokafka
        asyncio.run(metadata(without))
    t0 = time.monotonic()
    with pytest.raises(KafkaError):  # ... nor kafka-python (topic creation)
        ensure_topics(without, timeout=3)
    assert time.monotonic() - t0 < 30  # the timeout given, plus one connection attempt


def test_sasl_ssl_refuses_a_wrong_scram_password(secure_kafka):
    broker, pki = secure_kafka
    assert asyncio.run(metadata(settings_of(scram_env(broker, pki)))) == [("127.0.0.1", broker.sasl_ssl_port)]
    with pytest.raises(KafkaConnectionError):
        asyncio.run(metadata(settings_of(scram_env(broker, pki, password="wrong-" + SCRAM_PASSWORD))))


def test_worker_with_scram_sha_256_on_the_sasl_ssl_listener(secure_kafka, feed, tmp_path):
    broker, pki = secure_kafka
    worker_processes_the_feed(scram_env(broker, pki), feed, tmp_path / "worker")
