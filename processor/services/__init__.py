"""Launchers for the real components the processor runs against.

Each class starts a real process bound to 127.0.0.1 on a free port, waits
until it is usable, and is a context manager::

    from processor.services import ApacheKafka, RedisServer, PrometheusServer

    with ApacheKafka("/tmp/kafka-data") as kafka, RedisServer() as redis:
        run_job(kafka.bootstrap, redis.url)

The machine needs Java 17 + Maven (Kafka jars are fetched once into a cache),
redis-server and prometheus: ``scripts/setup.sh`` installs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy attributes, so that ``python -m processor.services.kafka`` does not
# import the module twice (runpy warns about that).
_EXPORTS = {
    "ManagedProcess": "._proc",
    "ServiceError": "._proc",
    "free_port": "._proc",
    "wait_for_port": "._proc",
    "DEFAULT_KAFKA_VERSION": ".kafka",
    "ApacheKafka": ".kafka",
    "BrokerTls": ".kafka",
    "ensure_kafka_jars": ".kafka",
    "PrometheusServer": ".prometheus",
    "RedisServer": ".redis",
    "TansuBroker": ".tansu",
    "KpiWorker": ".worker",
    "parse_metrics": ".worker",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from ._proc import ManagedProcess, ServiceError, free_port, wait_for_port
    from .kafka import DEFAULT_KAFKA_VERSION, ApacheKafka, BrokerTls, ensure_kafka_jars
    from .prometheus import PrometheusServer
    from .worker import KpiWorker, parse_metrics
    from .redis import RedisServer
    from .tansu import TansuBroker


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
