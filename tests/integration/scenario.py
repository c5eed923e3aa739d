"""The shared integration input: a seeded simulated hour and a half of two queues, a hand-built
"billing" queue whose figures are worked out by hand, two malformed messages and one duplicate;
and small Kafka helpers to produce it and read topics back.
"""
from __future__ import annotations

import io
import json
import uuid
from datetime import datetime

from processor.config import load_settings
from processor.core.events import parse_ts_ms
from processor.replay import replay_lines
from processor.services.rollups import latest, read_all, record_key  # noqa: F401 - the tests take them from here
from processor.simulator import Simulation, sorted_events

DAY = "2026-03-02"
CONFIG = """\
queues:
  billing:
    threshold_seconds: 20
    short_abandon_seconds: 5
    service_level_target: 0.8
    time_zone: Europe/Berlin
"""


def _ev(n: int, type_: str, hms: str, **fields) -> dict:
    return {"event_id": f"b{n}", "type": type_, "ts": f"{DAY}T{hms}Z", **fields}


def billing_events() -> list[dict]:
    """Five voice segments in queue billing, 10:00-10:04 UTC (threshold 20 s, short abandon 5 s).

    c1 answered after 10 s, 30 s hold, ACW 30 s: handle 10:00:10 -> 10:03:40 = 210 s
    c2 answered after 40 s, ACW 20 s:              handle 10:01:40 -> 10:04:00 = 140 s
    c3 abandoned after 3 s (short abandon), c4 abandoned after 30 s, c5 flowed out after 60 s.
    """
    e, n = [], iter(range(1, 100))
    for cid in ("bc1", "bc2", "bc3", "bc4", "bc5"):
        start = {"bc1": "10:00:00", "bc2": "10:01:00", "bc3": "10:02:00", "bc4": "10:02:00", "bc5": "10:03:00"}[cid]
        e.append(_ev(next(n), "contact.created", start, contact_id=cid, channel="voice", customer_id=f"u-{cid}"))
        e.append(_ev(next(n), "contact.queued", start, contact_id=cid, queue_id="billing"))
    e += [
        _ev(next(n), "contact.answered", "10:00:10", contact_id="bc1", queue_id="billing", agent_id="b-a1"),
        _ev(next(n), "contact.hold_started", "10:01:00", contact_id="bc1", agent_id="b-a1"),
        _ev(next(n), "contact.hold_ended", "10:01:30", contact_id="bc1", agent_id="b-a1"),
        _ev(next(n), "contact.wrapup_started", "10:03:10", contact_id="bc1", agent_id="b-a1"),
        _ev(next(n), "contact.wrapup_ended", "10:03:40", contact_id="bc1", agent_id="b-a1"),
        _ev(next(n), "contact.answered", "10:01:40", contact_id="bc2", queue_id="billing", agent_id="b-a2"),
        _ev(next(n), "contact.wrapup_started", "10:03:40", contact_id="bc2", agent_id="b-a2"),
        _ev(next(n), "contact.wrapup_ended", "10:04:00", contact_id="bc2", agent_id="b-a2"),
        _ev(next(n), "contact.abandoned", "10:02:03", contact_id="bc3", queue_id="billing"),
        _ev(next(n), "contact.abandoned", "10:02:30", contact_id="bc4", queue_id="billing"),
        _ev(next(n), "contact.flowed_out", "10:04:00", contact_id="bc5", queue_id="billing", reason="timeout"),
        _ev(next(n), "agent.state_changed", "10:00:00", agent_id="b-a1", state="available", queues=["billing"]),
        _ev(next(n), "agent.state_changed", "10:00:00", agent_id="b-a2", state="busy", queues=["billing"]),
        _ev(next(n), "agent.state_changed", "10:00:00", agent_id="b-a3", state="away", queues=["billing"]),
    ]
    return e


# Hand-computed "today" figures of billing (all five segments ended on the same Berlin day).
BILLING_TODAY = {
    'contact_queue_offered{queue="billing",channel="voice",window="today"}': 5,       # 2 + 2 + 1
    'contact_queue_answered{queue="billing",channel="voice",window="today"}': 2,
    'contact_queue_abandoned{queue="billing",channel="voice",window="today"}': 2,
    'contact_queue_short_abandoned{queue="billing",channel="voice",window="today"}': 1,  # c3, 3 s < 5 s
    'contact_queue_flowed_out{queue="billing",channel="voice",window="today"}': 1,
    # answered within 20 s: c1 only -> 1 / (5 - 1)
    'contact_queue_service_level_ratio{queue="billing",channel="voice",window="today",formula="answered_over_offered"}': 0.25,
    # 1 / 2 answered
    'contact_queue_service_level_ratio{queue="billing",channel="voice",window="today",formula="answered_over_answered"}': 0.5,
    # (1 answered within + 1 abandoned within (c3)) / (2 + 2)
    'contact_queue_service_level_ratio{queue="billing",channel="voice",window="today",formula="abandons_positive"}': 0.5,
    'contact_queue_asa_seconds{queue="billing",channel="voice",window="today"}': 25.0,   # (10 + 40) / 2
    'contact_queue_abandon_ratio{queue="billing",channel="voice",window="today"}': 0.25,  # (2 - 1) / (5 - 1)
    'contact_queue_max_wait_seconds{queue="billing",channel="voice",window="today"}': 60.0,  # c5
    'contact_queue_handled{queue="billing",channel="voice",window="today"}': 2,
    'contact_queue_aht_seconds{queue="billing",channel="voice",window="today"}': 175.0,  # (210 + 140) / 2
    'contact_queue_waiting{queue="billing",channel="voice"}': 0,
    'contact_queue_service_level_target_ratio{queue="billing",channel="voice"}': 0.8,
    'contact_queue_wait_seconds_count{queue="billing",channel="voice"}': 5,
    'contact_queue_wait_seconds_sum{queue="billing",channel="voice"}': 143.0,  # 10 + 40 + 3 + 30 + 60
    'contact_agents{queue="billing",state="available"}': 1,
    'contact_agents{queue="billing",state="busy"}': 1,
    'contact_agents{queue="billing",state="away"}': 1,
}

BAD_MESSAGES = [b"this is not json", b'{"event_id": "x1", "type": "contact.teleported", "ts": "2026-03-02T10:00:00Z"}']


def make_feed(work) -> dict:
    """The input (as produced, in order) and what replay computes from it."""
    start = datetime.fromisoformat(f"{DAY}T09:00:00+00:00").timestamp()
    # The realistic profile (half the contacts under customer id 0, a busy account, Zipf customers,
    # skewed presence clocks, missing optional fields): streaming must equal replay on such a log too.
    events = sorted_events(Simulation(seed=11, start=start, duration_seconds=5400, profile="realistic")) + billing_events()
    events.sort(key=lambda ev: parse_ts_ms(ev["ts"]))  # stable: ties keep their order
    events.append(billing_events()[2])  # bc2's contact.created again, same event_id: a duplicate
    config = work / "queues.yaml"
    config.write_text(CONFIG)
    lines = [json.dumps(ev).encode() for ev in events] + BAD_MESSAGES
    engine = load_settings(config).engine()
    out, dead = io.StringIO(), io.StringIO()
    pipeline = replay_lines(lines, engine, out, dead, flush=False)
    replayed = [json.loads(line) for line in out.getvalue().splitlines()]
    dead_letters = [json.loads(line) for line in dead.getvalue().splitlines()]
    return {"events": events, "lines": lines, "config": config, "pipeline": pipeline,
            "rollups": replayed, "dead_letters": dead_letters, "work": work}


def unique_topics() -> dict[str, str]:
    """KPI_* settings giving a test its own topics and consumer group on the shared broker."""
    suffix = uuid.uuid4().hex[:6]
    topics = {"INPUT_TOPIC": f"events-{suffix}", "ROLLUP_TOPIC": f"rollups-{suffix}",
              "DEAD_LETTER_TOPIC": f"dead-{suffix}", "FACTS_TOPIC": f"facts-{suffix}"}
    return {f"KPI_KAFKA__{k}": v for k, v in topics.items()} | {"KPI_APP_ID": f"kpi-test-{suffix}"}


def create_topics(bootstrap: str, env: dict[str, str]) -> None:
    """The processor's topics with their configured partitions, as `kpi produce` and workers do."""
    from processor.config import Settings
    from processor.topics import ensure_topics

    kafka = {k.removeprefix("KPI_KAFKA__").lower(): v for k, v in env.items() if k.startswith("KPI_KAFKA__")}
    ensure_topics(Settings(kafka={"bootstrap": bootstrap, **kafka}))


async def produce(bootstrap: str, topic: str, events: list[dict], raw: list[bytes] = ()) -> None:
    """Events keyed as the contract says (contact_id, else agent_id, else customer_id), then any raw messages."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for ev in events:
            key = ev.get("contact_id") or ev.get("agent_id") or ev.get("customer_id") or ""
            await producer.send(topic, json.dumps(ev).encode(), key=key.encode())
        for message in raw:
            await producer.send(topic, message, key=b"raw")
        await producer.flush()
    finally:
        await producer.stop()


def settled(s: dict[str, float], events: int, records: int) -> bool:
    """Both stages caught up: every event read, no lag on either topic, the watermark at stream time."""
    lags = [v for k, v in s.items() if k.startswith("kpi_consumer_lag_messages")]
    return (s.get("kpi_events_processed_total") == events and s.get("kpi_rollups_published_total", 0) >= records
            and len(lags) >= 2 and not any(lags)
            and s.get("kpi_watermark_seconds") == s.get("kpi_stream_time_seconds"))


def without_version(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "version"}


def caught_up(s: dict[str, float], last_event_s: float, partitions: int = 0) -> bool:
    """Stream time at the last event, no lag on any owned partition (at least `partitions` of each
    of the input and facts topics), and the watermark at stream time."""
    lags = [v for k, v in s.items() if k.startswith("kpi_consumer_lag_messages")]
    return (s.get("kpi_stream_time_seconds") == last_event_s and len(lags) >= max(2, 2 * partitions)
            and not any(lags) and s.get("kpi_watermark_seconds") == last_event_s)


def assert_gauges_equal_replay(s: dict[str, float], feed: dict) -> None:
    """The hand-computed billing figures, and every simulated queue's today counts and depth, as replay has them."""
    from processor.core.live import live_view
    from processor.services.worker import series_key

    for series, value in BILLING_TODAY.items():
        name, labels = series.rstrip("}").split("{")
        key = series_key(name, dict(pair.replace('"', "").split("=") for pair in labels.split(",")))
        assert s.get(key) is not None and abs(s[key] - value) <= 1e-9 * max(1.0, abs(value)), (series, s.get(key), value)
    pipeline = feed["pipeline"]
    for view in live_view(pipeline.queues, pipeline.queues.latest_ms):
        labels = {"queue": view["queue_id"], "channel": view["channel"]}
        for name in ("offered", "answered", "abandoned", "handled"):
            got = s[series_key(f"contact_queue_{name}", labels | {"window": "today"})]
            assert got == view["windows"]["today"][name], (labels, name)
        assert s[series_key("contact_queue_waiting", labels)] == view["waiting"], labels


def assert_rollups_equal_replay(bootstrap: str, env: dict[str, str], feed: dict,
                                isolation_level: str = "read_uncommitted", security: dict | None = None) -> tuple[int, int]:
    """The latest version of every record on the rollup topic equals replay's; returns (records, keys)."""
    import asyncio

    streamed = [json.loads(v) for _k, v in asyncio.run(read_all(
        bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"], isolation_level=isolation_level, security=security))]
    got, want = latest(streamed), latest(feed["rollups"])
    assert {k: without_version(r) for k, r in got.items()} == {k: without_version(r) for k, r in want.items()}
    return len(streamed), len(got)


def first_half_produced(bootstrap: str, feed: dict, extra_env: dict[str, str] | None = None) -> tuple[dict[str, str], int]:
    """Topics of the test's own with the first half of the shared input on them: (worker env, half)."""
    import asyncio

    env = unique_topics() | (extra_env or {})
    half = len(feed["events"]) // 2
    create_topics(bootstrap, env)
    asyncio.run(produce(bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], feed["events"][:half]))
    return env, half
