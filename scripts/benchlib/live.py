"""The live phases: events re-timed to the wall clock at a rate, probe contacts, the poller that
sees them in /metrics (latency), scrape cost, and the soak's RSS growth."""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
import urllib.request

from processor.core.events import format_ts
from processor.services.worker import parse_metrics, series_key

from .events import dumps, event_key
from .report import TARGETS, percentile, progress, progress_done


PROBE_QUEUE = "bench-probe"


PROBE_EVERY = 0.1  # seconds between probe contacts


PROBE_SERIES = series_key("contact_queue_offered", {"queue": PROBE_QUEUE, "channel": "voice", "window": "today"})


RSS_EVERY = 10.0  # seconds between RSS samples during the soak


class Poller(threading.Thread):
    """Scrapes /metrics every `interval` seconds and records (start, end, probe series value)."""

    def __init__(self, url: str, interval: float, series: str = PROBE_SERIES) -> None:
        super().__init__(name="metrics-poller", daemon=True)
        self.url, self.interval, self.series = url + "/metrics", interval, series
        self.samples: list[tuple[float, float, float]] = []  # wall-clock (request start, response read, value)
        self.errors = 0
        self.last: dict[str, float] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            t0 = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    body = resp.read()
                t1 = time.time()
                self.last = parse_metrics(body.decode())
                self.samples.append((t0, t1, self.last.get(self.series, 0.0)))
            except OSError:
                self.errors += 1
                t1 = time.time()
            self._stop_event.wait(max(0.0, self.interval - (t1 - t0)))

    def value(self) -> float:
        return self.samples[-1][2] if self.samples else 0.0

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)

    def resolution(self, since: float = 0.0, until: float = float("inf")) -> dict:
        """Achieved scrape period and duration (ms) over a time span."""
        s = [x for x in self.samples if since <= x[0] <= until]
        periods = sorted(b[0] - a[0] for a, b in zip(s, s[1:]))
        durations = sorted(x[1] - x[0] for x in s)
        ms = lambda v: round(v * 1000, 1) if v is not None else None  # noqa: E731
        span = s[-1][1] - s[0][0] if len(s) > 1 else 0.0
        busy = sum(x[1] - x[0] for x in s)
        return {"target_interval_ms": round(self.interval * 1000, 1), "scrapes": len(s),
                "scrape_share_of_wall_pct": round(busy / span * 100, 1) if span > 0 else None,
                "period_ms_p50": ms(percentile(periods, 50)), "period_ms_p99": ms(percentile(periods, 99)),
                "scrape_ms_p50": ms(percentile(durations, 50)), "scrape_ms_p99": ms(percentile(durations, 99))}


class ProbeLog:
    """Probe contacts sent, by sequence number (1, 2, ...), and when."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.sent: list[float] = []  # sent[k - 1] = wall-clock send time of probe k

    def events(self, ts_ms: int | None = None) -> list[dict]:
        """Probe k's three events, at ts_ms (default: the wall clock, which is then also its send time)."""
        seq = len(self.sent) + 1
        cid = f"probe-{self.suffix}-{seq}"
        wall = time.time()
        ts = format_ts(int(wall * 1000) if ts_ms is None else ts_ms)
        self.sent.append(wall)
        return [
            {"event_id": f"{cid}-1", "type": "contact.created", "ts": ts, "contact_id": cid, "channel": "voice",
             "customer_id": f"probe-customer-{self.suffix}"},
            {"event_id": f"{cid}-2", "type": "contact.queued", "ts": ts, "contact_id": cid, "queue_id": PROBE_QUEUE},
            {"event_id": f"{cid}-3", "type": "contact.abandoned", "ts": ts, "contact_id": cid, "queue_id": PROBE_QUEUE},
        ]

    def latencies(self, samples: list[tuple[float, float, float]], first: int, last: int) -> tuple[list[float], int]:
        """Latency of probes first..last (inclusive): first scrape whose value reached k, minus k's send time."""
        out, missed = [], 0
        i = 0
        ordered = sorted(samples, key=lambda x: x[1])
        for k in range(first, last + 1):
            while i < len(ordered) and ordered[i][2] < k:
                i += 1
            if i == len(ordered):
                missed += last - k + 1
                break
            out.append(ordered[i][1] - self.sent[k - 1])
        return out, missed


async def live_feed(producer, topic: str, gen, probes: ProbeLog, rate: float, seconds: float, label: str,
                    on_tick=None, poller: Poller | None = None) -> dict:
    """Events at a fixed offered rate, ts = wall clock at send, with a probe contact every PROBE_EVERY s."""
    failed: list = []

    def done(fut):
        if fut.cancelled() or fut.exception() is not None:
            failed.append(fut)

    async def send(ev: dict) -> None:
        fut = await producer.send(topic, dumps(ev), key=event_key(ev))
        fut.add_done_callback(done)

    first_probe = len(probes.sent) + 1
    last_ts: dict[bytes, int] = {}
    t0 = time.monotonic()
    sent = probe_events = 0
    next_probe, next_progress = t0, t0 + 1
    max_burst = max(1, int(rate * 0.05))
    while True:
        now = time.monotonic()
        elapsed = now - t0
        if elapsed >= seconds:
            break
        if now >= next_probe:
            for ev in probes.events():
                await send(ev)
                probe_events += 1
            next_probe += PROBE_EVERY
            if next_probe < now:  # stalled: do not burst probes afterwards
                next_probe = now + PROBE_EVERY
        due = min(int(elapsed * rate) - sent, max_burst)
        if due > 0:
            now_ms = int(time.time() * 1000)
            for ev in itertools.islice(gen, due):
                # ts = wall clock now, strictly increasing per message key so that re-timing never
                # turns a contact's ordered events into same-millisecond ties
                key = event_key(ev)
                ts_ms = max(now_ms, last_ts.get(key, 0) + 1)
                last_ts[key] = ts_ms
                ev["ts"] = format_ts(ts_ms)
                await send(ev)
            sent += due
        if on_tick is not None:
            on_tick(now)
        if now >= next_progress:
            next_progress += 1
            extra = f", probe gauge {poller.value():,.0f}/{len(probes.sent):,}" if poller else ""
            progress(f"{label}: {elapsed:5.1f}/{seconds:.0f}s, sent {sent:,} ({sent / elapsed:,.0f}/s){extra}", end="")
        wake = min(t0 + (sent + 1) / rate, next_probe)
        await asyncio.sleep(max(0.0, min(wake - time.monotonic(), 0.01)))
    elapsed = time.monotonic() - t0
    await producer.flush()
    progress_done()
    if failed:
        raise RuntimeError(f"{len(failed)} live messages were not delivered: {failed[0].exception()!r}")
    return {"seconds": round(elapsed, 3), "events": sent, "probe_events": probe_events,
            "offered_events_per_s": sent / elapsed, "offered_with_probes_per_s": (sent + probe_events) / elapsed,
            "target_rate": rate, "first_probe": first_probe, "last_probe": len(probes.sent),
            "wall_start": time.time() - elapsed, "wall_end": time.time()}


def scrape_cost(url: str, n: int = 20) -> dict:
    """What one /metrics scrape costs the worker when it has nothing else to do (ms), and its size."""
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            size = len(resp.read())
        times.append(time.perf_counter() - t0)
        time.sleep(0.02)
    times.sort()
    return {"ms_p50": round(percentile(times, 50) * 1000, 2), "ms_max": round(times[-1] * 1000, 2), "bytes": size}


def wait_for_probe(poller: Poller, seq: int, timeout: float, stall: float = 20.0) -> float:
    """Wait until the probe gauge reaches seq, for at most `timeout` s and while it keeps moving.

    Returns the wall-clock time the wait ended (probes not seen by then were waited for that long).
    """
    progress(f"waiting for probe {seq} on /metrics (at most {timeout:.0f} s, or {stall:.0f} s without progress) ...")
    deadline = time.monotonic() + timeout
    last_value, last_move = poller.value(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_move < stall:
        value = poller.value()
        if value >= seq:
            break
        if value != last_value:
            last_value, last_move = value, time.monotonic()
        time.sleep(0.05)
    else:
        progress(f"probe gauge at {poller.value():,.0f}/{seq:,}: giving up")
    return time.time()


def latency_summary(probes: ProbeLog, poller: Poller, feed: dict, waited_until: float) -> dict:
    """Percentiles over every probe sent; a probe never seen counts as slower than any seen one.

    A percentile that falls on such a probe is reported as a string "> X" (X = the shortest time any
    unseen probe was waited for), and the number stays out of the *_ms fields (None there).
    """
    lat, missed = probes.latencies(poller.samples, feed["first_probe"], feed["last_probe"])
    t0 = probes.sent[feed["first_probe"] - 1]
    series = [[round(probes.sent[k - 1] - t0, 2), round(v * 1000, 1)]  # in send order: where the slow ones fall
              for k, v in zip(range(feed["first_probe"], feed["last_probe"] + 1), lat)]
    lat.sort()
    unseen_floor = waited_until - probes.sent[feed["last_probe"] - 1] if missed else None
    ms = lambda v: round(v * 1000, 1) if v is not None else None  # noqa: E731
    everything = lat + [float("inf")] * missed
    out = {"probes": len(everything), "detected": len(lat), "missed": missed,
           "missed_waited_at_least_ms": ms(unseen_floor), "min_ms": ms(lat[0] if lat else None)}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = percentile(everything, q)
        out[f"{name}_ms"] = ms(v) if v != float("inf") else None
        out[f"{name}_text"] = f"{v * 1000:.1f} ms" if v != float("inf") else f"> {unseen_floor * 1000:,.0f} ms"
    out["poll"] = poller.resolution(feed["wall_start"], waited_until)
    out["series_s_ms"] = series
    return out


def rss_growth(samples: list[tuple[float, int]]) -> dict:
    """A soak's RSS (samples of (seconds, kB)): first, last, largest, growth over it and over its second half (%)."""
    values = [kb for _, kb in samples]
    half = [kb for t, kb in samples if t >= samples[-1][0] / 2]
    return {"rss_first_kb": values[0], "rss_last_kb": values[-1], "rss_max_kb": max(values),
            "growth_pct": (values[-1] - values[0]) / values[0] * 100,
            "growth_pct_second_half": (half[-1] - half[0]) / half[0] * 100 if len(half) > 1 else None}


def soak_flat(growth_pct: float) -> bool:
    """The soak target: no growth beyond TARGETS["soak_rss_growth_pct"] over the soak."""
    return growth_pct <= TARGETS["soak_rss_growth_pct"]
