"""The Redis live snapshot (processor/snapshot.py) without a Redis: reshaping of `live_view`, change
detection, and outage handling against an in-memory stand-in for `redis.asyncio.Redis`.

The numbers are the core's (live_view); here they are only checked to arrive unchanged, with one
hand-computed queue to make sure the right window lands in the right field.
"""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from processor.core.capacity import staffing_view
from processor.core.live import live_view
from processor.snapshot import (RedisSnapshot, decode, digest, encode, queue_key, read_snapshot, snapshot_entries,
                                snapshot_now)
from tests.coretools import Contact, at, by_time, ev, run


def billing_like():
    """Q1 voice, 10:00-10:04 (T = 20 s, S = 5 s, target 0.80):
    c1 answered after 10 s, c2 answered after 40 s, c3 abandoned after 3 s (short), c4 abandoned after 30 s,
    c5 flowed out after 60 s, c6 queued at 10:04:30 and still waiting; plus one chat answered after 5 s.
    """
    contacts = [
        Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:10"),
        Contact("c2", created="10:01:00").queued("Q1", "10:01:00").answered("Q1", "10:01:40", agent="a2"),
        Contact("c3", created="10:02:00").queued("Q1", "10:02:00").abandoned("Q1", "10:02:03"),
        Contact("c4", created="10:02:00").queued("Q1", "10:02:00").abandoned("Q1", "10:02:30"),
        Contact("c5", created="10:03:00").queued("Q1", "10:03:00").flowed_out("Q1", "10:04:00"),
        Contact("c6", created="10:04:30").queued("Q1", "10:04:30"),
        Contact("k1", channel="chat", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05"),
    ]
    agents = [
        ev("agent.state_changed", "10:00:00", agent_id="a1", state="available", queues=("Q1",)),
        ev("agent.state_changed", "10:00:00", agent_id="a2", state="busy", queues=("Q1",)),
        ev("agent.state_changed", "10:00:00", agent_id="a3", state="away", queues=("Q1", "Q2")),
    ]
    return run(agents + by_time(*contacts), flush=False).pipeline


NOW = at("10:05:00")


def test_entries_reshape_live_view_per_queue_and_channel():
    book = billing_like().queues
    entries = snapshot_entries({3: book}, NOW, owner="w1")
    assert sorted(entries) == ["kpi:queue:Q1:chat", "kpi:queue:Q1:voice"]
    e = entries["kpi:queue:Q1:voice"]
    # hand-computed, today: offered 5 (c1..c5), short abandon c3, answered within T: c1 only
    today = e["window:today"]
    assert (today["offered"], today["answered"], today["abandoned"], today["short_abandoned"],
            today["flowed_out"]) == (5, 2, 2, 1, 1)
    assert today["service_level"] == {"answered_over_offered": 0.25, "answered_over_answered": 0.5,
                                      "abandons_positive": 0.5}
    assert today["asa_seconds"] == 25.0 and today["abandon_rate"] == 0.25 and today["max_wait_seconds"] == 60.0
    # c6 waits since 10:04:30: 30 s at 10:05:00
    assert (e["waiting"], e["longest_wait_seconds"]) == (1, 30.0)
    assert (e["service_level_target"], e["threshold_seconds"], e["short_abandon_seconds"]) == (0.8, 20.0, 5.0)
    assert e["agents"] == {"available": 1, "away": 1, "busy": 1}
    assert (e["owner"], e["partition"], e["as_of_ms"], e["layout"]) == ("w1", 3, NOW, 1)
    assert e["stream_time_ms"] == book.latest_ms == at("10:04:30")
    # every window of live_view arrives unchanged, nothing else is computed here
    for view in live_view(book, NOW):
        got = entries[queue_key(view["queue_id"], view["channel"])]
        for window, figures in view["windows"].items():
            assert got[f"window:{window}"] == figures
    chat = entries["kpi:queue:Q1:chat"]
    assert chat["waiting"] == 0 and chat["longest_wait_seconds"] is None
    assert chat["window:today"]["service_level"]["answered_over_offered"] == 1.0
    assert chat["agents"] == e["agents"]  # agents serve the queue, whatever the channel
    # foresight at the stream clock (10:04:30): c6 has just queued, nobody at risk; staffing per queue
    assert (e["at_risk"], e["breached_waiting"]) == (0, 0)
    # no leg has ended (no wrap-up yet): no AHT, so no staffing figure, only the staffed agents
    staffing = {v["queue_id"]: v for v in staffing_view(book, book.latest_ms)}
    assert staffing["Q1"]["inputs"] is None and staffing["Q1"]["staffed_agents"] == 3
    assert e["staffing"] == {"need": None, "have": 3, "model": None} == chat["staffing"]


def test_empty_books_give_no_entries_and_now_follows_the_collector_rule():
    assert snapshot_entries({}, NOW, owner="w") == {}
    book = billing_like().queues
    # replaying history (stream far behind the wall clock): windows end at stream time
    assert snapshot_now([book], wall_ms=at("2026-12-25T00:00:00Z")) == book.latest_ms
    # live (stream within minutes of the wall clock): windows end at the wall clock
    assert snapshot_now([book], wall_ms=book.latest_ms + 1000) == book.latest_ms + 1000
    assert snapshot_now([], wall_ms=5) == 5


def test_encode_decode_every_field_is_json():
    e = snapshot_entries({0: billing_like().queues}, NOW, owner="w1")["kpi:queue:Q1:chat"]
    fields = encode(e)
    assert fields["queue_id"] == '"Q1"' and fields["longest_wait_seconds"] == "null" and fields["waiting"] == "0"
    assert json.loads(fields["window:today"])["offered"] == 1
    raw = {k.encode(): v.encode() for k, v in fields.items()}  # what redis-py returns without decode_responses
    assert decode(raw) == e


def test_digest_ignores_time_stamps_and_sub_second_waits():
    e = snapshot_entries({0: billing_like().queues}, NOW, owner="w1")["kpi:queue:Q1:voice"]
    same = dict(e, stream_time_ms=1, as_of_ms=2, updated_at_ms=3, longest_wait_seconds=30.9)
    assert digest(same) == digest(e)
    assert digest(dict(e, longest_wait_seconds=31.0)) != digest(e)
    assert digest(dict(e, waiting=2)) != digest(e)
    assert digest(dict(e, owner="w2")) != digest(e)


# -- the writer, against an in-memory Redis ----------------------------------------------------------

class FakeRedis:
    """Just the commands the snapshot and read_snapshot use; `down` makes every command fail."""

    def __init__(self):
        self.hashes: dict[str, dict[str, str]] = {}
        self.ttl: dict[str, int] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.published: list[tuple[str, dict]] = []
        self.down = False
        self.executed = 0
        self.connection_pool = self

    async def disconnect(self):
        pass

    async def aclose(self):
        pass

    def pipeline(self, transaction=True):
        return FakePipeline(self)

    async def zrange(self, key, start, stop, withscores=False):
        self._check()
        return sorted(self.zsets.get(key, {}).items(), key=lambda kv: (kv[1], kv[0]))

    def _check(self):
        if self.down:
            raise RedisConnectionError("Connection refused")


class FakePipeline:
    def __init__(self, redis: FakeRedis):
        self.r, self.ops = redis, []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    def __getattr__(self, name):
        return lambda *a, **kw: self.ops.append((name, a, kw))

    async def execute(self):
        r = self.r
        r._check()
        out = []
        for name, a, kw in self.ops:
            if name == "delete":
                r.hashes.pop(a[0], None)
            elif name == "hset":
                r.hashes.setdefault(a[0], {}).update(kw["mapping"])
            elif name == "expire":
                r.ttl[a[0]] = a[1]
            elif name == "zadd":
                r.zsets.setdefault(a[0], {}).update(a[1])
            elif name == "zremrangebyscore":
                limit = float(a[2].lstrip("("))
                z = r.zsets.get(a[0], {})
                for m in [m for m, s in z.items() if s < limit]:
                    del z[m]
            elif name == "publish":
                r.published.append((a[0], json.loads(a[1])))
            elif name == "hgetall":
                out.append(dict(r.hashes.get(a[0], {})))
                continue
            elif name == "zscore":
                out.append(r.zsets.get(a[0], {}).get(a[1]))
                continue
            out.append(True)
        r.executed += 1
        return out


def _writer(fake: FakeRedis, **kw) -> RedisSnapshot:
    return RedisSnapshot("redis://:secret@127.0.0.1:1/0", owner="w1", client=fake, backoff=(0.0,), **kw)


def test_first_write_is_full_then_only_changes_are_published():
    fake = FakeRedis()
    snap = _writer(fake)
    book = billing_like().queues
    entries = snapshot_entries({0: book}, NOW, "w1")
    assert asyncio.run(snap.write_once(entries))
    assert snap.up and snap.writes == 2
    assert fake.published == [("kpi:changes", {"owner": "w1", "updated_at_ms": fake.published[0][1]["updated_at_ms"],
                                               "full": True, "keys": ["kpi:queue:Q1:chat", "kpi:queue:Q1:voice"]})]
    assert fake.ttl == {"kpi:queue:Q1:chat": 120, "kpi:queue:Q1:voice": 120}
    assert set(fake.zsets["kpi:queues"]) == {"kpi:queue:Q1:chat", "kpi:queue:Q1:voice"}
    assert decode(fake.hashes["kpi:queue:Q1:voice"])["window:today"]["offered"] == 5

    # same figures half a second later (only the time stamps moved): confirmed, not rewritten, not published
    later = snapshot_entries({0: book}, NOW + 400, "w1")
    asyncio.run(snap.write_once(later))
    assert len(fake.published) == 1 and snap.writes == 2 and fake.executed == 2

    # one queue changes: only it is rewritten and announced
    changed = dict(later)
    changed["kpi:queue:Q1:voice"] = dict(later["kpi:queue:Q1:voice"], waiting=2)
    asyncio.run(snap.write_once(changed))
    assert fake.published[-1][1]["keys"] == ["kpi:queue:Q1:voice"] and fake.published[-1][1]["full"] is False
    assert decode(fake.hashes["kpi:queue:Q1:voice"])["waiting"] == 2
    assert snap.writes == 3


def test_unchanged_hashes_are_refreshed_without_a_change_message():
    fake = FakeRedis()
    snap = _writer(fake, refresh_seconds=0.0)
    entries = snapshot_entries({0: billing_like().queues}, NOW, "w1")
    asyncio.run(snap.write_once(entries))
    fake.hashes.clear()  # e.g. someone flushed Redis without a restart
    asyncio.run(snap.write_once(entries))
    assert len(fake.published) == 1 and set(fake.hashes) == set(entries)


def test_a_queue_given_away_is_forgotten_and_written_in_full_when_it_comes_back():
    fake = FakeRedis()
    snap = _writer(fake)
    entries = snapshot_entries({0: billing_like().queues}, NOW, "w1")
    voice = {"kpi:queue:Q1:voice": entries["kpi:queue:Q1:voice"]}
    asyncio.run(snap.write_once(entries))
    asyncio.run(snap.write_once(voice))       # rebalance: the chat queue went to another worker
    assert fake.published[-1:] == fake.published[:1]  # nothing new announced
    asyncio.run(snap.write_once(entries))     # ... and came back: written and announced again
    assert fake.published[-1][1]["keys"] == ["kpi:queue:Q1:chat"]


def test_outage_is_logged_once_retried_with_backoff_and_caught_up_in_full(caplog):
    fake = FakeRedis()
    snap = RedisSnapshot("redis://:secret@127.0.0.1:1/0", owner="w1", client=fake, backoff=(0.0, 0.0, 60.0))
    pipeline = billing_like()
    entries = snapshot_entries({0: pipeline.queues}, NOW, "w1")
    asyncio.run(snap.write_once(entries))
    fake.down = True
    caplog.set_level(logging.DEBUG, logger="processor.snapshot")
    for _ in range(3):
        assert not asyncio.run(snap.write_once(entries))
    assert not snap.up and snap.errors == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert "secret" not in caplog.text  # the URL's password never reaches the log

    # third failure: next try in 60 s, so the timer does not even compute a snapshot meanwhile
    snap.offer({0: pipeline.queues})
    assert snap._pending is None

    fake.down = False
    fake.hashes.clear()
    fake.zsets.clear()  # Redis came back empty (restarted without persistence)
    snap._retry_at = 0.0
    assert asyncio.run(snap.write_once(entries))
    assert snap.up and set(fake.hashes) == set(entries)
    assert fake.published[-1][1]["full"] is True and sorted(fake.published[-1][1]["keys"]) == sorted(entries)
    back = [r for r in caplog.records if r.levelno >= logging.WARNING][1:]
    assert len(back) == 1 and "back" in back[0].getMessage()


def test_run_writes_only_the_latest_offer_and_stops_cleanly():
    fake = FakeRedis()
    snap = _writer(fake)
    pipeline = billing_like()

    async def scenario():
        task = asyncio.create_task(snap.run())
        snap.offer({0: pipeline.queues}, wall_ms=at("10:05:00"))
        snap.offer({0: pipeline.queues}, wall_ms=at("10:05:10"))  # replaces the unsent one
        for _ in range(50):
            await asyncio.sleep(0.01)
            if fake.executed:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert fake.executed == 1
    assert decode(fake.hashes["kpi:queue:Q1:voice"])["as_of_ms"] == at("10:05:10")
    assert snap._client is None  # closed on the way out


def test_read_snapshot_gives_the_whole_center_with_confirmation_times():
    fake = FakeRedis()
    snap = _writer(fake)
    entries = snapshot_entries({0: billing_like().queues}, NOW, "w1")
    asyncio.run(snap.write_once(entries))
    fake.zsets["kpi:queues"]["kpi:queue:gone:voice"] = 1.0  # listed, but its hash expired
    got = asyncio.run(read_snapshot(fake))
    assert [g["key"] for g in got] == ["kpi:queue:Q1:chat", "kpi:queue:Q1:voice"]
    assert all(g["confirmed_at_ms"] == g["updated_at_ms"] for g in got)
    assert got[1]["window:today"] == entries["kpi:queue:Q1:voice"]["window:today"]


# -- the wallboard server's state machine (no HTTP, no Redis) --------------------------------------------

def _events(q: asyncio.Queue) -> list[tuple[str, dict]]:
    out = []
    while not q.empty():
        head, data = q.get_nowait().decode().split("\ndata: ")
        out.append((head.removeprefix("event: "), json.loads(data)))
    return out


def test_wallboard_pushes_state_then_only_changed_queues():
    from processor.wallboard import Wallboard

    fake = FakeRedis()
    snap = _writer(fake)
    board = Wallboard("redis://127.0.0.1:1/0")
    board._client = fake
    client: asyncio.Queue = asyncio.Queue(maxsize=10)
    board.clients.add(client)
    entries = snapshot_entries({0: billing_like().queues}, NOW, "w1")

    async def scenario():
        await snap.write_once(entries)
        await board.resync()
        first = _events(client)
        changed = dict(entries, **{"kpi:queue:Q1:voice": dict(entries["kpi:queue:Q1:voice"], waiting=4)})
        await snap.write_once(changed)
        await board.refresh_keys(fake.published[-1][1]["keys"])  # what the change message names
        second = _events(client)
        await board.resync()  # nothing new since
        third = _events(client)
        fake.down = True
        await board.resync()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert [e for e, _ in first] == ["state"]
    state = first[0][1]
    assert state["redis_up"] is True and state["stale_after_seconds"] == 10.0
    assert [q["key"] for q in state["queues"]] == ["kpi:queue:Q1:chat", "kpi:queue:Q1:voice"]
    assert state["queues"][1]["window:today"]["service_level"]["answered_over_offered"] == 0.25
    assert [(e, [q["key"] for q in d["queues"]]) for e, d in second] == [("update", ["kpi:queue:Q1:voice"])]
    assert second[0][1]["queues"][0]["waiting"] == 4
    assert third == []
    assert board.redis_up is False and len(board.queues) == 2  # the page keeps the last figures, marked stale


def test_wallboard_gives_a_slow_client_the_whole_state_instead_of_a_backlog():
    from processor.wallboard.server import RESYNC, Wallboard

    board = Wallboard("redis://127.0.0.1:1/0")
    q: asyncio.Queue = asyncio.Queue(maxsize=2)
    board.clients.add(q)
    for _ in range(3):
        board.broadcast("update", {"queues": []})
    assert q.qsize() == 1 and q.get_nowait() is RESYNC


def test_kpi_wallboard_needs_a_redis_url(monkeypatch, capsys):
    from processor.cli import main

    monkeypatch.delenv("KPI_REDIS_URL", raising=False)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    assert main(["wallboard"]) == 2
    assert "KPI_REDIS_URL" in capsys.readouterr().err
