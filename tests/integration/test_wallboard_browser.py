"""The wallboard in a real browser: Apache Kafka -> `kpi worker` -> redis-server -> `kpi wallboard` (SSE)
-> headless Debian chromium, driven by Selenium through Debian's chromium-driver (same version as the
browser, both from apt; nothing is downloaded at run time).

The input is scenario.py's (two simulated queues and the hand-computed billing queue) plus two small
hand-built queues so that all three target colours are on screen: `priority` (4 of 4 answered within
T: 100 %, green, and one contact waiting about 2 min: longest wait red) and `renewals` (7 of 9: 78 %, amber).
billing is 25 % against 80 %: red.

Its screenshot goes to a temporary folder (the one in the README is taken by test_kpi_run.py, on request).
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
import redis

from processor.core.events import parse_ts_ms
from processor.services import KpiWorker, RedisServer
from processor.services._proc import ManagedProcess, free_port, wait_for_port
from chromium import start_chromium, wait_js
from scenario import BAD_MESSAGES, DAY, produce, unique_topics

pytestmark = pytest.mark.integration

BILLING = "kpi:queue:billing:voice"
GREEN, AMBER, RED = (0x1F, 0xBF, 0x5B), (0xF5, 0xA3, 0x00), (0xE5, 0x38, 0x3B)  # wallboard.css
STALE_AFTER = 6


def _ev(eid: str, type_: str, hms: str, **fields) -> dict:
    return {"event_id": eid, "type": type_, "ts": f"{DAY}T{hms}Z", **fields}


def _contact(cid: str, queue: str, channel: str, queued: str, answered: str | None, agent: str) -> list[dict]:
    out = [_ev(f"{cid}-1", "contact.created", queued, contact_id=cid, channel=channel, customer_id=f"u-{cid}"),
           _ev(f"{cid}-2", "contact.queued", queued, contact_id=cid, queue_id=queue)]
    if answered:
        out.append(_ev(f"{cid}-3", "contact.answered", answered, contact_id=cid, queue_id=queue, agent_id=agent))
    return out


def extra_queues() -> list[dict]:
    e = []
    for i in range(4):  # answered after 5 s each: 4 / 4 within T
        e += _contact(f"pr{i}", "priority", "voice", f"10:2{i}:00", f"10:2{i}:05", "p-a1")
    e += _contact("pr-wait", "priority", "voice", "10:28:00", None, "p-a1")  # still waiting at the end
    for i in range(9):  # 7 answered after 10 s, 2 after 40 s: 7 / 9
        e += _contact(f"rn{i}", "renewals", "chat", f"10:1{i}:00", f"10:1{i}:{'10' if i < 7 else '40'}", "r-a1")
    e += [_ev("pa1", "agent.state_changed", "10:15:00", agent_id="p-a1", state="busy", queues=["priority"]),
          _ev("pa2", "agent.state_changed", "10:15:00", agent_id="p-a2", state="available", queues=["priority"]),
          _ev("ra1", "agent.state_changed", "10:15:00", agent_id="r-a1", state="acw", queues=["renewals"])]
    return e


@pytest.fixture(scope="module")
def stack(kafka, feed, tmp_path_factory):
    """redis-server, a worker that has processed the whole input, and `kpi wallboard`."""
    work = tmp_path_factory.mktemp("wallboard")
    events = sorted(feed["events"] + extra_queues(), key=lambda ev: parse_ts_ms(ev["ts"]))
    env = unique_topics()
    topic = env["KPI_KAFKA__INPUT_TOPIC"]
    server = RedisServer(work_dir=work / "redis").start()
    worker = KpiWorker(kafka.bootstrap, work_dir=work / "worker", config=feed["config"],
                       env=env | {"KPI_REDIS_URL": server.url})
    port = free_port()
    board = ManagedProcess([sys.executable, "-m", "processor.cli", "wallboard", "--port", str(port),
                            "--redis-url", server.url, "--stale-after", str(STALE_AFTER)],
                           work / "wallboard.log", name="kpi-wallboard")
    try:
        asyncio.run(produce(kafka.bootstrap, topic, events, BAD_MESSAGES))
        t0 = time.monotonic()
        worker.start()
        board.start()
        wait_for_port("127.0.0.1", port, 15, process=board)
        client = redis.Redis.from_url(server.url, decode_responses=True)
        keys = {"kpi:queue:billing:voice", "kpi:queue:priority:voice", "kpi:queue:renewals:chat",
                "kpi:queue:sales:voice", "kpi:queue:support:voice", "kpi:queue:support:chat"}

        def done(s):
            lags = [v for k, v in s.items() if k.startswith("kpi_consumer_lag_messages")]
            return (s.get("kpi_events_processed_total") == len(events) and len(lags) >= 2 and not any(lags)
                    and set(client.zrange("kpi:queues", 0, -1)) == keys)

        worker.wait_for(done, timeout=120, what="every event processed and every queue in Redis")
        time.sleep(1.0)  # the snapshot tick after the last fact
        print(f"\nworker processed {len(events)} events into Redis in {time.monotonic() - t0:.1f}s")
        yield {"server": server, "worker": worker, "board": board, "url": f"http://127.0.0.1:{port}/",
               "bootstrap": kafka.bootstrap, "topic": topic, "events": events, "port": port}
    finally:
        board.stop(10)
        worker.stop()
        server.stop()


@pytest.fixture(scope="module")
def browser():
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


def row_text(driver, key: str) -> dict[str, str]:
    return driver.execute_script("""
        var tr = document.querySelector('tr[data-key="' + arguments[0] + '"]');
        if (!tr) return null;
        var out = {};
        ["qid", "chan", "waiting", "longest", "longest-sub", "sl", "sl-sub", "asa", "abandon", "agents",
         "staffing"].forEach(function (c) {
            out[c] = tr.querySelector("." + c).textContent; });
        out.sl_class = tr.querySelector(".sl").className;
        out.longest_class = tr.querySelector(".longest").className;
        return out;""", key)


def test_page_shows_billing_figures_and_target_colours(stack, browser):
    browser.get(stack["url"])
    wait_js(browser, "return document.querySelectorAll('#rows tr').length === 6", 10, "six queue rows")
    billing = row_text(browser, BILLING)
    # scenario.py BILLING_TODAY: SL 1 / (5 - 1), ASA (10 + 40) / 2, abandon (2 - 1) / (5 - 1); agents 1/1/0/1
    assert (billing["qid"], billing["chan"], billing["waiting"], billing["longest"]) == ("billing", "voice", "0", "—")
    assert (billing["sl"], billing["asa"], billing["abandon"]) == ("25%", "25 s", "25%")
    assert billing["sl-sub"].startswith("target 80%")
    assert billing["sl_class"].endswith("level-red")
    assert billing["agents"].replace(" ", "") == "1ready1busy0ACW1away"
    assert billing["longest-sub"] == "T = 20 s · 0 at risk"
    assert billing["staffing"] == "need — / have 3"  # no billing leg ended in its staffing window: no figure
    priority = row_text(browser, "kpi:queue:priority:voice")
    assert (priority["sl"], priority["waiting"]) == ("100%", "1") and priority["sl_class"].endswith("level-green")
    assert priority["longest_class"].endswith("level-red")  # ~2 min > 2 x T (stream time: the last event ~10:30)
    renewals = row_text(browser, "kpi:queue:renewals:chat")
    assert renewals["sl"] == "78%" and renewals["sl_class"].endswith("level-amber")
    assert browser.execute_script("return document.getElementById('banner').hidden") is True
    assert browser.execute_script("return document.getElementById('empty').hidden") is True


def test_a_new_event_reaches_the_page_within_seconds(stack, browser):
    """Produce to Kafka -> worker -> Redis -> pub/sub -> SSE -> DOM, timed on one clock, three times."""
    from aiokafka import AIOKafkaProducer

    browser.execute_script("""
        var cell = document.querySelector('tr[data-key="' + arguments[0] + '"] .waiting');
        window.__seen = {};
        new MutationObserver(function () {
            if (!(cell.textContent in window.__seen)) window.__seen[cell.textContent] = Date.now();
        }).observe(cell, {childList: true, characterData: true, subtree: true});""", BILLING)
    last = max(parse_ts_ms(ev["ts"]) for ev in stack["events"])

    async def send(n: int) -> float:
        hms = time.strftime("%H:%M:%S", time.gmtime(last / 1000 + n))
        producer = AIOKafkaProducer(bootstrap_servers=stack["bootstrap"], acks="all", linger_ms=0)
        await producer.start()
        try:
            sent_at = time.time()
            for ev in _contact(f"bw{n}", "billing", "voice", hms, None, "b-a1"):
                await producer.send(stack["topic"], json.dumps(ev).encode(), key=f"bw{n}".encode())
            await producer.flush()
            return sent_at
        finally:
            await producer.stop()

    delays = []
    for n in (1, 2, 3):  # billing waiting 0 -> 1 -> 2 -> 3
        sent_at = asyncio.run(send(n))
        changed_at = wait_js(browser, f"return window.__seen['{n}']", 10, f"billing waiting {n}")
        delays.append(changed_at / 1000 - sent_at)
    print("\nproduce -> page: billing 'waiting' changed " + ", ".join(f"{d * 1000:.0f}" for d in delays)
          + " ms after the event was produced")
    assert all(0 < d < 3.0 for d in delays), delays
    assert row_text(browser, BILLING)["waiting"] == "3"


def test_screenshot_is_a_full_hd_dark_board_with_the_target_colours(stack, browser, tmp_path):
    from PIL import Image

    time.sleep(0.3)
    SCREENSHOT = tmp_path / "wallboard.png"
    assert browser.save_screenshot(str(SCREENSHOT))
    img = Image.open(SCREENSHOT).convert("RGB")
    assert img.size == (1920, 1080)
    histogram = img.getcolors(maxcolors=1 << 24)  # [(count, (r, g, b))]
    total = img.size[0] * img.size[1]
    colours = len(histogram)
    dark = sum(n for n, p in histogram if sum(p) < 120) / total

    def near(c, tol=24):
        return sum(n for n, p in histogram if all(abs(a - b) <= tol for a, b in zip(p, c)))

    counts = {"green": near(GREEN), "amber": near(AMBER), "red": near(RED)}
    print(f"\nscreenshot {SCREENSHOT}: {img.size[0]}x{img.size[1]}, {colours} colours, {dark:.0%} dark, "
          f"target-colour pixels {counts}")
    assert colours > 100 and dark > 0.5  # not blank, dark background
    for name, n in counts.items():
        assert n > 2000, f"no {name} on the board ({counts})"


def test_empty_state_and_stale_banners(stack, browser):
    # -- empty state: a second wallboard on an empty Redis database (db 1) --------------------------------
    port = free_port()
    empty = ManagedProcess([sys.executable, "-m", "processor.cli", "wallboard", "--port", str(port),
                            "--redis-url", stack["server"].url.rsplit("/", 1)[0] + "/1"],
                           stack["server"].work_dir / "wallboard-empty.log", name="kpi-wallboard-empty")
    empty.start()
    try:
        wait_for_port("127.0.0.1", port, 15, process=empty)
        browser.get(f"http://127.0.0.1:{port}/")
        wait_js(browser, "return document.getElementById('empty').hidden === false && "
                         "document.getElementById('board').hidden && document.getElementById('banner').hidden",
                5, "the empty state without a banner")
        assert "No queues yet" in browser.find_element("id", "empty").text
    finally:
        empty.stop(10)

    # -- the figures stop being confirmed (the worker is gone): stale banner after --stale-after ------------
    browser.get(stack["url"])
    wait_js(browser, "return document.querySelectorAll('#rows tr').length === 6", 10, "six queue rows")
    t0 = time.monotonic()
    stack["worker"].stop()
    text = wait_js(browser, "var b = document.getElementById('banner'); return !b.hidden && b.textContent",
                   STALE_AFTER + 15, "the stale banner")
    print(f"\nstale banner {time.monotonic() - t0:.1f}s after the worker was stopped: {text!r}")
    assert text.startswith("Stale: figures not updated for")
    assert browser.execute_script("return document.querySelectorAll('#rows tr.stale').length") == 6

    # -- the wallboard server goes away: the page says the connection is lost ------------------------------
    stack["board"].stop(10)
    text = wait_js(browser, "var b = document.getElementById('banner'); "
                            "return b.textContent.indexOf('Connection') === 0 && b.textContent", 10, "connection lost")
    assert "lost" in text
