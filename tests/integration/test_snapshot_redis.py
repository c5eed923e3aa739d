"""The Redis live snapshot on real components: Apache Kafka -> `kpi worker` (KPI_REDIS_URL) -> redis-server.

The billing queue of scenario.py (figures worked out by hand) lands in its hash; a change message is
published when figures change and not while they stand still; redis-server stopped under a running
worker does not stop it (events keep being processed, /metrics keeps advancing, the outage is logged
once); and when redis-server comes back on the same port the whole snapshot is written again at once.
"""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
import redis

from processor.services import KpiWorker, RedisServer
from processor.snapshot import decode
from scenario import BILLING_TODAY, CONFIG, DAY, billing_events, produce, unique_topics

pytestmark = pytest.mark.integration

KEY = "kpi:queue:billing:voice"
_SERIES = re.compile(r'^(\w+)\{(.*)\}$')


def expected_hash_figures() -> dict[tuple, float]:
    """BILLING_TODAY (Prometheus series) spelled as paths into the billing hash."""
    renames = {"asa_seconds": "asa_seconds", "abandon_ratio": "abandon_rate", "max_wait_seconds": "max_wait_seconds",
               "aht_seconds": "aht_seconds"}
    out = {}
    for series, value in BILLING_TODAY.items():
        name, labels = _SERIES.match(series).groups()
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        name = name.removeprefix("contact_queue_")
        if name == "waiting":
            out[("waiting",)] = value
        elif name == "service_level_target_ratio":
            out[("service_level_target",)] = value
        elif name == "contact_agents":
            out[("agents", labels["state"])] = value
        elif name == "service_level_ratio":
            out[("window:today", "service_level", labels["formula"])] = value
        elif name.startswith("wait_seconds"):
            continue  # the histogram is Prometheus only
        else:
            out[("window:today", renames.get(name, name))] = value
    return out


def _get(entry: dict, path: tuple):
    for p in path:
        entry = entry[p]
    return entry


def read_hash(client: redis.Redis) -> dict | None:
    try:
        fields = client.hgetall(KEY)
    except redis.ConnectionError:
        return None
    return decode(fields) if fields else None


def drain(pubsub, seconds: float) -> list[dict]:
    """Every change message received within ``seconds``."""
    out, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        m = pubsub.get_message(timeout=min(left, 0.1))
        if m is not None and m["type"] == "message":
            out.append(json.loads(m["data"]))
    return out


def wait_until(predicate, timeout: float, what: str, worker: KpiWorker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s\n{worker.log_tail()}")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(work_dir=tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


def new_contact(cid: str, hms_queued: str, hms_answered: str) -> list[dict]:
    def ts(hms: str) -> str:
        return f"{DAY}T{hms}Z"

    return [
        {"event_id": f"{cid}-1", "type": "contact.created", "ts": ts(hms_queued), "contact_id": cid,
         "channel": "voice", "customer_id": f"u-{cid}"},
        {"event_id": f"{cid}-2", "type": "contact.queued", "ts": ts(hms_queued), "contact_id": cid,
         "queue_id": "billing"},
        {"event_id": f"{cid}-3", "type": "contact.answered", "ts": ts(hms_answered), "contact_id": cid,
         "queue_id": "billing", "agent_id": "b-a1"},
    ]


REDIS_OUTAGE_SECONDS = 60


def test_snapshot_hash_change_messages_outage_and_catch_up(kafka, redis_server, tmp_path):
    env = unique_topics() | {"KPI_REDIS_URL": redis_server.url}
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    config = tmp_path / "queues.yaml"
    config.write_text(CONFIG)
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2, socket_connect_timeout=2)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("kpi:changes")

    events = billing_events()
    asyncio.run(produce(kafka.bootstrap, topic, events))
    t0 = time.monotonic()
    with KpiWorker(kafka.bootstrap, work_dir=tmp_path / "worker", config=config, env=env) as worker:
        # -- the hand-computed figures land in the hash -------------------------------------------------
        entry = wait_until(lambda: (h := read_hash(client)) and h["window:today"]["offered"] == 5
                           and sum(h["agents"].values()) == 3 and h, 90, "billing in Redis", worker)
        print(f"\nbilling in Redis {time.monotonic() - t0:.1f}s after the worker started")
        for path, value in expected_hash_figures().items():
            assert _get(entry, path) == pytest.approx(value), path
        assert entry["queue_id"] == "billing" and entry["channel"] == "voice"
        assert entry["threshold_seconds"] == 20.0 and entry["longest_wait_seconds"] is None
        assert entry["owner"] and entry["layout"] == 1
        assert entry["stream_time_ms"] == entry["as_of_ms"]  # replaying history: windows end at stream time
        assert 0 < client.ttl(KEY) <= 120
        members = dict(client.zrange("kpi:queues", 0, -1, withscores=True))
        assert members.keys() == {KEY.encode()} and members[KEY.encode()] > time.time() * 1000 - 5000

        # -- a change message was published; none while the figures stand still --------------------------
        messages = drain(pubsub, 0.5)
        assert messages and all(m["keys"] == [KEY] and m["owner"] == entry["owner"] for m in messages)
        # three snapshot ticks with nothing new: the queue is confirmed in kpi:queues but not announced
        assert drain(pubsub, 1.5) == []
        assert dict(client.zrange("kpi:queues", 0, -1, withscores=True))[KEY.encode()] > members[KEY.encode()]

        s = worker.scrape()
        assert s["kpi_redis_up"] == 1 and s["kpi_redis_snapshot_writes_total"] >= 1
        assert s.get("kpi_redis_snapshot_errors_total", 0) == 0
        processed = s["kpi_events_processed_total"]

        # -- Redis goes away: the worker keeps processing --------------------------------------------------
        pubsub.close()
        port = redis_server.port
        redis_server.stop()
        more = new_contact("bc6", "10:05:00", "10:05:08") + new_contact("bc7", "10:06:00", "10:06:30")
        t_out = time.monotonic()
        asyncio.run(produce(kafka.bootstrap, topic, more))
        s = worker.wait_for(lambda s: s.get("kpi_events_processed_total") == processed + len(more)
                            and s.get('contact_queue_offered{channel="voice",queue="billing",window="today"}') == 7
                            and s.get("kpi_redis_up") == 0,
                            timeout=30, what="events processed while Redis is down")
        print(f"{len(more)} events processed with Redis down in {time.monotonic() - t_out:.1f}s")
        # Redis stays away for a minute; /metrics keeps serving the right figures all along
        while time.monotonic() - t_out < REDIS_OUTAGE_SECONDS:
            time.sleep(5)
            s2 = worker.scrape()
            assert s2.get('contact_queue_offered{channel="voice",queue="billing",window="today"}') == 7
            assert s2["kpi_redis_up"] == 0
        print(f"Redis down for {time.monotonic() - t_out:.0f}s: /metrics served the right figures throughout")
        s2 = worker.scrape()
        assert s2["kpi_redis_up"] == 0 and s2["kpi_redis_snapshot_errors_total"] >= 2
        log = (tmp_path / "worker" / "worker.log").read_text()
        assert log.count("is unreachable") == 1, log[-3000:]  # once per outage, not per tick

        # -- Redis is back on the same port (empty: no persistence): the snapshot catches up at once --------
        back = RedisServer(port=port, work_dir=tmp_path / "redis2")
        back.start()
        try:
            t_back = time.monotonic()
            client = redis.Redis.from_url(back.url, socket_timeout=2, socket_connect_timeout=2)
            entry = wait_until(lambda: (h := read_hash(client)) and h, 15, "snapshot written again", worker)
            caught_up = time.monotonic() - t_back
            print(f"snapshot written again {caught_up:.2f}s after Redis came back")
            today = entry["window:today"]
            # 5 hand-computed segments + bc6 (answered after 8 s, within T) + bc7 (after 30 s)
            assert (today["offered"], today["answered"]) == (7, 4)
            assert today["service_level"]["answered_over_offered"] == pytest.approx(2 / 6)  # (1 + 1) / (7 - 1)
            assert today["asa_seconds"] == pytest.approx((10 + 40 + 8 + 30) / 4)
            assert caught_up < 8  # the retry delay is at most 4 s
            assert KEY.encode() in dict(client.zrange("kpi:queues", 0, -1, withscores=True))
            s3 = worker.wait_for(lambda s: s.get("kpi_redis_up") == 1, timeout=10, what="kpi_redis_up back to 1")
            assert s3["kpi_redis_snapshot_writes_total"] > s["kpi_redis_snapshot_writes_total"]
            assert "is back: wrote a full snapshot" in (tmp_path / "worker" / "worker.log").read_text()
        finally:
            client.close()
            back.stop()
