"""Real components for the integration tests, each started once per session and stopped at the end.

The Apache Kafka broker (KRaft, from the Maven Central jars) is shared; each test uses its own
consumer group and topics, so tests do not see each other's data.
"""
from __future__ import annotations

import time

import pytest

from processor.services import ApacheKafka
from scenario import make_feed


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = ApacheKafka(tmp_path_factory.mktemp("kafka-data"))
    t0 = time.monotonic()
    broker.start(timeout=120)
    print(f"\nApache Kafka ready at {broker.bootstrap} in {time.monotonic() - t0:.1f}s")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def feed(tmp_path_factory):
    """The shared input and what `kpi replay` computes from it (scenario.py)."""
    return make_feed(tmp_path_factory.mktemp("feed"))
