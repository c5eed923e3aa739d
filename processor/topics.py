"""Create the processor's topics with the configured partition count before anything writes to them.

A producer that writes first would otherwise have the broker auto-create the input topic with its
own default (often one partition), and the processor could then never scale past one worker.
kafka-python's admin client is used because this is a one-off, synchronous call at start.
"""
from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from .config import Settings

log = logging.getLogger("processor")


def event_key(event: dict) -> bytes:
    """The message key the contract gives an event: its contact, else its agent, else its customer."""
    return (event.get("contact_id") or event.get("agent_id") or event.get("customer_id") or "").encode()


def processor_topics(settings: Settings) -> list[str]:
    k = settings.kafka
    return [k.input_topic, k.facts_topic, k.journeys_topic, k.rollup_topic, k.dead_letter_topic]


class _Redact(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, SASL password included: mask it."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret in text:
            record.msg, record.args = text.replace(self.secret, "**********"), None
        return True


DEAD_LETTER_MAX_MESSAGE_BYTES = 8 * 1024 * 1024 + 64 * 1024  # the app's producer limit plus batch overhead


def topic_configs_for(settings: Settings, topic: str) -> dict[str, str]:
    """A dead letter is the rejected message whole, JSON-escaped (up to six times its size: \\u0001): the
    dead-letter topic accepts more than the broker's default 1 MB, so one can always be written."""
    if topic == settings.kafka.dead_letter_topic:
        return {"max.message.bytes": str(DEAD_LETTER_MAX_MESSAGE_BYTES)}
    return {}


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create any missing processor topic; returns the names created. Existing topics are left alone."""
    k = settings.kafka
    secret = k.sasl_password.get_secret_value() if k.sasl_password else ""
    if not secret:
        return _ensure_topics(settings, timeout)
    redact, admin_log = _Redact(secret), logging.getLogger("kafka.admin.client")
    admin_log.addFilter(redact)
    try:
        return _ensure_topics(settings, timeout)
    finally:
        admin_log.removeFilter(redact)


def _ensure_topics(settings: Settings, timeout: float) -> list[str]:
    k = settings.kafka
    deadline = time.monotonic() + timeout
    while True:
        try:
            # kafka-python waits bootstrap_timeout_ms (30 s by default) for a first broker: not past our deadline
            wait_ms = int(max(1.0, deadline - time.monotonic()) * 1000)
            admin = KafkaAdminClient(bootstrap_servers=k.bootstrap, client_id=f"{settings.app_id}-admin",
                                     request_timeout_ms=10_000, bootstrap_timeout_ms=wait_ms, **kafka_python_security(settings))
            break
        except KafkaError:  # broker not reachable yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in processor_topics(settings) if t not in existing]
        if missing:
            new = [NewTopic(t, num_partitions=k.partitions, replication_factor=k.replication_factor,
                            topic_configs=topic_configs_for(settings, t)) for t in missing]
            try:
                admin.create_topics(new, timeout_ms=10_000, raise_errors=False)
            except TopicAlreadyExistsError:  # a concurrent start created it first
                pass
            log.info("created topics %s with %d partitions", missing, k.partitions)
        return missing
    except KafkaError as exc:
        raise RuntimeError(f"cannot create topics on {k.bootstrap}: {exc}") from exc
    finally:
        admin.close()


def kafka_python_security(settings: Settings) -> dict:
    """kafka-python's options. TLS goes in as the one context every client uses (KafkaConfig.ssl_context()),
    so the key password is never in kafka-python's configuration (which it logs at DEBUG)."""
    return _client_security(settings)


def faust_credentials(settings: Settings) -> dict:
    """Faust's broker credentials; the TLS context (CA, client certificate) is KafkaConfig.ssl_context()."""
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    from faust.auth import SASLCredentials, SSLCredentials

    ctx = k.ssl_context()
    if k.security_protocol == "SSL":
        return {"broker_credentials": SSLCredentials(ctx)}
    password = k.sasl_password.get_secret_value() if k.sasl_password else None
    return {"broker_credentials": SASLCredentials(
        username=k.sasl_username, password=password, mechanism=k.sasl_mechanism, ssl_context=ctx)}


def aiokafka_security(settings: Settings) -> dict:
    """The same security settings for a plain aiokafka client (`kpi produce`, `kpi simulate`, re-reads)."""
    return _client_security(settings)


def _client_security(settings: Settings) -> dict:
    """aiokafka and kafka-python name these options alike: protocol, TLS context, SASL user."""
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    opts: dict = {"security_protocol": k.security_protocol}
    ctx = k.ssl_context()
    if ctx is not None:
        opts["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                    sasl_plain_password=k.sasl_password.get_secret_value() if k.sasl_password else None)
    return opts
