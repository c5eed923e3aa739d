"""End-to-end benchmark of the KPI processor on a real Apache Kafka broker (a benchmark, not a test).

    python scripts/bench.py [--events 100000] [--rate 2000] [--latency-seconds 30] [--soak-seconds 0]
                            [--bootstrap host:port] [--keep] [--output results.json]
                            [--warmup-seconds 5] [--poll-ms 50] [--partitions 4] [--seed 7]
                            [--workers 2] [--worker-env KPI_X=value ...]
                            [--profile realistic|uniform] [--beside uniform|realistic|none] [--busy-share 0.38]

Issue 19's figures: `--events 500000 --rate 2000 --latency-seconds 60` (the realistic log then has
55 % of its contacts under id 0 and one account with 21,173 contacts in 7 days; docs/simulator.md).

One run:
  0. generate N contract events with the seeded simulator (the first N in event-time order, all in
     the past) in the --profile customer profile (default realistic: 55 % of the contacts under the
     placeholder id 0, one business account with --busy-share of them, Zipf customers, skewed
     presence clocks, missing optional fields), print who calls in it, and time `kpi replay` on it,
     on the same log with a distinct customer per contact (the ratio), and on the --beside
     profile's log of the same N and seed (no broker);
  1. start Apache Kafka (KRaft, from the cached Maven jars) in a temporary folder unless --bootstrap
     is given, create this run's topics (unique suffix, --partitions each) and produce the N events
     as fast as possible, keyed as the contract says;
  2. baseline: a bare, group-less aiokafka consumer reads the N messages from earliest and
     json-decodes each;
  3. processor: a `kpi worker` (own app id, this run's topics) from launch to every event processed
     and zero lag on both of its topics, /metrics polled every 0.2 s;
  4. latency: live events (simulated contacts re-timed to the wall clock) at --rate events/s for
     --warmup-seconds (the switch from history to live time; reported apart), then for
     --latency-seconds, with probe contacts (created + queued + abandoned, same ts) in the queue
     `bench-probe` every 100 ms; a poller thread scrapes /metrics every --poll-ms (default 50) until
     contact_queue_offered{queue="bench-probe",channel="voice",window="today"} reaches the probe's
     sequence number: latency = detection wall time - probe send time (scrapes run on the worker's
     event loop, so the share of the worker's time they take is printed too);
  5. memory: the worker's peak RSS (VmHWM), and with --soak-seconds > 0 its RSS every 10 s while
     the live feed goes on at --rate;
  6. with --workers W > 1, after the first worker is stopped: the same N events on topics of their
     own, read by W workers of one group, timed like step 3 (first event to zero lag everywhere; the
     group rebalances when the later workers join, and they recover the first one's tables);
     then the steady state: 1 worker, and W workers, each on empty topics of their own, the group
     settled (every worker owns input partitions, unchanged for 3 s) before the N events are
     produced, timed from the first processed event to zero lag: the W-to-1 ratio of that;
  7. with --beside (default: the other profile), after the first worker is stopped: one worker's
     catch-up on the --beside profile's log, on topics of its own, timed like step 3;
  8. a summary table on stdout, the results as JSON (--output, default bench-results.json in the
     run folder).
Each catch-up and the latency run also report the worker's event-loop holds from /metrics
(kpi_event_loop_hold_seconds, kpi_event_loop_hold_max_seconds, kpi_event_loop_step_max_seconds),
or "not exported" when the worker has none.

The probe gauge counts since local midnight of the queue (UTC unless configured): a run that crosses
midnight loses the probes before it (they show as not seen).

Progress goes to stderr; figures to stdout. The broker and the worker are stopped at the end. Without
--keep the bulky files (broker log segments, worker data, the event file) are deleted and the logs
and the results kept; with --keep everything stays (and, with --bootstrap, the run's topics too).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from processor.config import Settings  # noqa: E402
from processor.core import describe as describe_core  # noqa: E402
from processor.core.events import format_ts, parse_ts_ms  # noqa: E402
from processor.services.worker import parse_metrics, series_key  # noqa: E402
from processor.simulator import DEFAULT_MODEL, BusyAccount, Model, Simulation, sorted_events, with_profile  # noqa: E402

PROBE_QUEUE = "bench-probe"
PROBE_EVERY = 0.1  # seconds between probe contacts
PROBE_SERIES = series_key("contact_queue_offered", {"queue": PROBE_QUEUE, "channel": "voice", "window": "today"})
CATCHUP_POLL = 0.2  # seconds between /metrics scrapes while the worker catches up
RSS_EVERY = 10.0  # seconds between RSS samples during the soak
SIM_EVENTS_PER_HOUR = 3400  # about what the default simulated contact center emits

TARGETS = {
    "worker_events_per_s": 10_000,       # >= per worker, end to end
    "latency_p99_s": 1.0,                # <= at 2,000 events/s offered
    "soak_rss_growth_pct": 10.0,         # <= over a 10-minute soak
    "replay_events_per_s": 50_000,       # >=
    "replay_ratio_to_distinct": 0.6,     # >= realistic log / the same log with a distinct customer per contact
    "loop_hold_s": 0.25,                 # <= the longest event-loop hold (kpi_event_loop_hold_max_seconds)
    "busy_account_contacts": 20_000,     # issue 19's realistic log: one account with this many in the window
    "placeholder_share": 0.5,            # ... and at least this share of contacts under the placeholder id
}
RECONTACT_WINDOW_MS = 7 * 86_400_000     # the default recontact window W
PROFILES = ("realistic", "uniform")

_T0 = time.monotonic()


# -- output helpers --------------------------------------------------------------------------------
_TTY = sys.stderr.isatty()


def progress(msg: str, end: str = "\n") -> None:
    """A progress line on stderr, stamped with the seconds since the script started.

    end="" marks a line that the next one overwrites on a terminal (one line per call otherwise).
    """
    if end == "" and not _TTY:
        end = "\n"
    prefix = "\r" if end == "" else ""
    print(f"{prefix}[{time.monotonic() - _T0:7.1f}s] {msg}", end=end, file=sys.stderr, flush=True)


def progress_done() -> None:
    """End a run of overwritten progress lines."""
    if _TTY:
        print(file=sys.stderr, flush=True)


def figure(msg: str) -> None:
    """A result line on stdout."""
    print(msg, flush=True)


def fmt_rate(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f} events/s"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def labels_of(key: str) -> dict[str, str]:
    return dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', key))


def proc_status(pid: int | None) -> dict[str, int]:
    """VmRSS / VmHWM (kB) of a live process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    if not pid:
        return out
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def proc_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def host_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cpus": os.cpu_count(), "cpu_model": cpu, "loadavg_at_start": os.getloadavg(), "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git("rev-parse", "--short", "HEAD"),
            "git_dirty_files": [line[3:] for line in git("status", "--porcelain").splitlines()],
            "core": describe_core()}  # the workers this benchmark starts inherit its environment


def event_key(ev: dict) -> bytes:
    """The message key the contract prescribes: contact_id, else agent_id, else customer_id."""
    return (ev.get("contact_id") or ev.get("agent_id") or ev.get("customer_id") or "").encode()


def dumps(ev: dict) -> bytes:
    return json.dumps(ev, separators=(",", ":")).encode()


# -- the simulated center's customer profile ---------------------------------------------------------
BENCH_UNIDENTIFIED = 0.55  # issue 19's realistic log: >= 50 % of the contacts under one placeholder id
BENCH_BUSY_SHARE = 0.38    # one account: >= 20,000 contacts in 7 days from about 500,000 events on


def bench_model(profile: str, busy_share: float = BENCH_BUSY_SHARE) -> Model:
    """The built-in center (the same queues, agents and arrivals under both profiles) with issue 19's
    benchmark customers: `realistic` = 55 % unidentified under id `0`, one business account with
    `busy_share` of the new contacts, Zipf-distributed identified customers for the rest, and the
    built-in feed traits (presence clock skew, missing optional fields); `uniform` = a new customer
    per contact, the simulator of the figures published before issue 19."""
    from dataclasses import replace

    customers = replace(DEFAULT_MODEL.customers, unidentified_share=BENCH_UNIDENTIFIED,
                        busy_accounts=(BusyAccount("biz-1", busy_share),) if busy_share > 0 else ())
    return with_profile(Model(DEFAULT_MODEL.queues, customers, DEFAULT_MODEL.feed), profile)


def distinct_customers(events: list[dict]) -> list[dict]:
    """The same log with a distinct customer per contact (and per churn): no customer has two contacts."""
    out = []
    for ev in events:
        if "customer_id" in ev:
            ev = dict(ev)
            ev["customer_id"] = f"d-{ev.get('contact_id') or ev['event_id']}"
        out.append(ev)
    return out


def log_profile(events: list[dict], placeholder: str = "0") -> dict:
    """Who the contacts of a log come from: the placeholder's share, the busiest identified account and its
    most contacts inside one recontact window (7 days), and the tail of the identified customers."""
    import collections

    seen: set[str] = set()
    times: dict[str, list[int]] = collections.defaultdict(list)
    contacts = 0
    for ev in events:
        if ev["type"] == "contact.created" and ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            times[ev["customer_id"]].append(parse_ts_ms(ev["ts"]))
            contacts += 1
    unidentified = len(times.get(placeholder, ()))
    identified = {c: t for c, t in times.items() if c != placeholder}
    busiest, in_window = None, 0
    for c, ts in identified.items():
        if len(ts) <= in_window:
            continue
        ts.sort()
        lo = best = 0
        for hi, t in enumerate(ts):  # the densest window [t - W, t]
            while t - ts[lo] >= RECONTACT_WINDOW_MS:
                lo += 1
            best = max(best, hi - lo + 1)
        if best > in_window:
            busiest, in_window = c, best
    counts = sorted((len(t) for t in identified.values()), reverse=True)
    share = unidentified / contacts if contacts else None
    return {"contacts": contacts, "events": len(events), "placeholder": placeholder,
            "placeholder_contacts": unidentified, "placeholder_share": share,
            "identified_customers": len(identified),
            "identified_with_one_contact_share": (sum(1 for n in counts if n == 1) / len(counts)) if counts else None,
            "top_identified_contacts": counts[:5], "busiest_account": busiest,
            "busiest_account_contacts_in_7_days": in_window,
            "meets_issue_19_log": bool(share is not None and share >= TARGETS["placeholder_share"]
                                       and in_window >= TARGETS["busy_account_contacts"])}


def profile_text(lp: dict) -> str:
    share = lp["placeholder_share"]
    return (f"{lp['contacts']:,} contacts, {share * 100 if share is not None else 0:.1f}% under id "
            f"{lp['placeholder']!r}, busiest account {lp['busiest_account']} with "
            f"{lp['busiest_account_contacts_in_7_days']:,} contacts in 7 days, {lp['identified_customers']:,} "
            f"identified customers (top {lp['top_identified_contacts']}, "
            f"{(lp['identified_with_one_contact_share'] or 0) * 100:.0f}% with one contact)")


# -- event-loop holds (kpi_event_loop_hold_seconds, when the worker exports it) ------------------------
HOLD = "kpi_event_loop_hold_seconds"
HOLD_MAX = "kpi_event_loop_hold_max_seconds"
STEP_MAX = "kpi_event_loop_step_max_seconds"


def loop_holds(samples: dict[str, float]) -> dict:
    """The worker's event-loop holds from one /metrics scrape: the longest since it started (gauge), the
    histogram's count, sum and observations over 100 / 250 ms, each timed step's longest section.
    {"exported": False} when the worker has none of these series (never an estimate)."""
    count = samples.get(f"{HOLD}_count")
    longest = samples.get(HOLD_MAX)
    steps = {labels_of(k).get("step", "?"): v for k, v in samples.items() if k.startswith(STEP_MAX + "{")}
    if count is None and longest is None and not steps:
        return {"exported": False}
    buckets = {}
    for k, v in samples.items():
        if k.startswith(f"{HOLD}_bucket{{"):
            le = labels_of(k).get("le", "")
            buckets[float("inf") if le == "+Inf" else float(le)] = v
    over = {}
    for bound in (0.1, 0.25):
        if count is not None and bound in buckets:
            over[f"over_{round(bound * 1000)}ms"] = count - buckets[bound]
    return {"exported": True, "longest_s": longest, "samples": count, "sum_s": samples.get(f"{HOLD}_sum"),
            **over, "step_longest_s": steps}


def hold_text(h: dict | None) -> str:
    if not h or not h.get("exported"):
        return f"not exported (no {HOLD} / {HOLD_MAX} on the worker's /metrics)"
    parts = [f"longest {h['longest_s'] * 1000:,.0f} ms" if h.get("longest_s") is not None
             else f"longest: not exported ({HOLD_MAX} absent)"]
    if h.get("samples") is not None:
        parts.append(f"{h['samples']:,.0f} samples" + "".join(
            f", {h[k]:,.0f} {k.replace('_', ' ')}" for k in ("over_100ms", "over_250ms") if k in h))
    if h.get("step_longest_s"):
        worst = sorted(h["step_longest_s"].items(), key=lambda kv: -kv[1])[:3]
        parts.append("steps " + ", ".join(f"{k} {v * 1000:,.0f} ms" for k, v in worst))
    return "; ".join(parts)


def hold_met(h: dict | None) -> str:
    if not h or h.get("longest_s") is None:
        return "not measured"
    return "met" if h["longest_s"] <= TARGETS["loop_hold_s"] else "NOT met"


# -- step 0: events and replay -----------------------------------------------------------------------
def simulate(seed: int, start: float, hours: float, model: Model = DEFAULT_MODEL) -> list[dict]:
    return sorted_events(Simulation(model, seed=seed, start=start, duration_seconds=hours * 3600))


def generate_events(n: int, seed: int, model: Model = DEFAULT_MODEL) -> tuple[list[dict], float]:
    """The first n events, in event-time order, of a seeded simulation that starts at a UTC midnight
    (so a given N and seed give the same day shape on every run) and ends before today."""
    hours = n / SIM_EVENTS_PER_HOUR * 1.15 + 1
    while True:
        days_back = int(hours // 24) + 2  # the drain after the end stays well before today
        start = float((int(time.time()) // 86400 - days_back) * 86400)
        progress(f"simulating {hours:.1f} h of the contact center (seed {seed}) for {n:,} events ...")
        events = simulate(seed, start, hours, model)
        if len(events) >= n:
            return events[:n], hours
        hours *= max(1.2, n / max(1, len(events)) * 1.15)


LIVE_POOL_MAX = 200_000  # events simulated for the live phases; reused with fresh ids when more are needed
ID_FIELDS = ("event_id", "contact_id", "agent_id", "customer_id", "repeat_of")


def live_pool(seed: int, needed: int, model: Model = DEFAULT_MODEL) -> list[dict]:
    """A whole simulated center (drained, every contact finished) of about min(needed, LIVE_POOL_MAX) events."""
    target = min(needed, LIVE_POOL_MAX)
    hours = max(1.0, target / SIM_EVENTS_PER_HOUR * 1.15)
    start = float((int(time.time()) // 86400 - int(hours // 24) - 2) * 86400)
    progress(f"simulating {hours:.1f} h of the contact center (seed {seed}) for the live feed ...")
    while True:
        pool = simulate(seed, start, hours, model)
        if len(pool) >= target:
            return pool
        hours *= max(1.2, target / max(1, len(pool)) * 1.15)


def pass_id_fields(model: Model) -> tuple[str, ...]:
    """The fields a repeated pass of a pool renames: with realistic customers, not `customer_id` (they
    are one customer base, the placeholder and the busy account included, and stay hot pass after pass)."""
    return tuple(f for f in ID_FIELDS if f != "customer_id" or not model.customers.realistic)


def live_events(pool: list[dict], prefix: str, fields: tuple[str, ...] = ID_FIELDS):
    """The pool's events in event-time order, again and again, each pass with its own id prefix so no
    contact, agent or event of one pass (or of the backlog) meets another. The caller sets `ts`."""
    for n in itertools.count():
        p = f"{prefix}{n}-"
        for ev in pool:
            ev = dict(ev)
            for f in fields:
                if isinstance(ev.get(f), str):
                    ev[f] = p + ev[f]
            yield ev


def run_replay(events_path: Path, out_path: Path) -> dict:
    """`kpi replay` on the event file in a child process; its own events/s line is parsed."""
    cmd = [sys.executable, "-m", "processor.cli", "replay", "--input", str(events_path), "--output", str(out_path)]
    progress(f"kpi replay on {events_path} ...")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"kpi replay failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    m = re.search(r"replayed ([\d,]+) events in ([\d.]+) s \(([\d,]+) events/s\): ([\d,]+) rollup records", proc.stderr)
    if not m:
        raise RuntimeError(f"cannot read kpi replay's output:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("replayed "))
    return {"command": " ".join(cmd), "events": int(m.group(1).replace(",", "")), "seconds": float(m.group(2)),
            "events_per_s": float(m.group(3).replace(",", "")), "rollup_records": int(m.group(4).replace(",", "")),
            "process_wall_seconds": round(wall, 3), "reported_line": line}


# -- step 1: produce ---------------------------------------------------------------------------------
async def produce_bulk(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> dict:
    """Send pre-encoded (key, value) messages as fast as the producer takes them; acks=all."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    failed = []

    def done(fut):
        if fut.cancelled() or fut.exception() is not None:
            failed.append(fut)

    try:
        t0 = time.monotonic()
        for i, (key, value) in enumerate(messages, 1):
            fut = await producer.send(topic, value, key=key)
            fut.add_done_callback(done)
            if i % 10_000 == 0:
                progress(f"produced {i:,}/{len(messages):,} ({i / (time.monotonic() - t0):,.0f}/s)", end="")
        await producer.flush()
        elapsed = time.monotonic() - t0
    finally:
        await producer.stop()
    progress_done()
    if failed:
        raise RuntimeError(f"{len(failed)} messages were not delivered: {failed[0].exception()!r}")
    return {"messages": len(messages), "seconds": round(elapsed, 3), "events_per_s": len(messages) / elapsed,
            "bytes": sum(len(v) for _, v in messages), "producer": "aiokafka acks=all linger_ms=10 batch 512 KiB"}


# -- step 2: baseline consumer -------------------------------------------------------------------------
async def baseline_consume(bootstrap: str, topic: str, n: int, timeout: float = 120) -> dict:
    """A bare aiokafka consumer (no group, from earliest) reading n messages and json-decoding each."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    t_start = time.monotonic()
    await consumer.start()
    count, first, last_progress = 0, None, time.monotonic()
    deadline = time.monotonic() + timeout
    try:
        while count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"baseline consumer read only {count:,}/{n:,} messages in {timeout:.0f}s")
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if first is None and records:
                    first = time.monotonic()
                for r in records:
                    json.loads(r.value)
                count += len(records)
            if time.monotonic() - last_progress >= 1:
                last_progress = time.monotonic()
                progress(f"baseline consumer read {count:,}/{n:,}", end="")
        t_end = time.monotonic()
    finally:
        await consumer.stop()
    progress_done()
    span = t_end - first
    return {"messages": count, "seconds_first_to_last": round(span, 3), "events_per_s": (count - 1) / span if span > 0 else None,
            "seconds_including_start": round(t_end - t_start, 3), "events_per_s_including_start": count / (t_end - t_start)}


# -- step 3: worker catch-up ---------------------------------------------------------------------------
def lag_by_topic(samples: dict[str, float]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for key, value in samples.items():
        if key.startswith("kpi_consumer_lag_messages{"):
            lab = labels_of(key)
            out.setdefault(lab.get("topic", ""), {})[int(lab.get("partition", -1))] = value
    return out


def caught_up(samples: dict[str, float], n: int, topics: list[str], partitions: int) -> bool:
    """n events processed, zero lag on every partition of `topics`, and the output handed to the broker
    (a worker whose producer still holds a backlog of table writes has not finished with its input:
    the next events' facts wait behind it)."""
    lags = lag_by_topic(samples)
    return (samples.get("kpi_events_processed_total", 0) >= n
            and all(len(lags.get(t, {})) >= partitions and not any(lags[t].values()) for t in topics)
            and not samples.get("kpi_output_batches_in_flight", 0))


def stage_topics(topics: dict) -> list[str]:
    """The topics the stages read: the input, the facts and the journey facts (named after the facts
    topic, as in processor.config). Caught up means zero lag on all three: until 4 December the
    journey facts were left out, and a catch-up counted as done while the journey stage was still
    behind (seen as seconds of delay for the first live events after a 30- and a 95-day backlog)."""
    return [topics["input_topic"], topics["facts_topic"], f"{topics['facts_topic']}-journeys"]


def measure_catchup(workers: list, n: int, topics: list[str], partitions: int, timeout: float,
                    after_start=None) -> dict:
    """From the launch of the workers (one group) to n events processed between them and zero lag on
    every partition of `topics` (each worker reports the partitions it owns). `after_start`, if
    given, runs once the workers serve /metrics (the steady-state run: wait for the group, produce)."""
    t_launch = time.monotonic()
    for worker in workers:
        worker.start(timeout=120)
    t_metrics = time.monotonic()
    if after_start is not None:
        after_start()
    progress(f"worker pids {[w.pid for w in workers]} serving /metrics after {t_metrics - t_launch:.1f}s; waiting for "
             f"{n:,} events and zero lag ...")

    def cpu_seconds() -> float | None:
        values = [proc_cpu_seconds(w.pid) for w in workers]
        return None if None in values else sum(values)

    t_first = n_first = cpu_first = None
    t_done = None
    samples: dict[str, float] = {}
    last_progress = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scrapes = []
        for worker in workers:
            try:
                scrapes.append(worker.scrape())
            except OSError:
                scrapes.append({})
        samples = {}
        for one in scrapes:  # lag series are per owned partition: the union covers the topic
            for key, value in one.items():
                summed = key.split("{")[0].endswith("_total") or key == "kpi_output_batches_in_flight"
                samples[key] = samples.get(key, 0) + value if summed else value
        now = time.monotonic()
        processed = samples.get("kpi_events_processed_total", 0)
        if t_first is None and processed > 0:
            t_first, n_first, cpu_first = now, processed, cpu_seconds()
        if all(scrapes) and caught_up(samples, n, topics, partitions):
            t_done = now
            break
        for worker in workers:
            if not worker.running:
                raise RuntimeError(f"worker exited during catch-up:\n{worker.log_tail()}")
        if now - last_progress >= 1:
            last_progress = now
            lag = sum(v for t in lag_by_topic(samples).values() for v in t.values())
            rate = (processed - n_first) / (now - t_first) if t_first and now > t_first else 0
            progress(f"processed {processed:,.0f}/{n:,} ({rate:,.0f}/s), lag {lag:,.0f}", end="")
        time.sleep(CATCHUP_POLL)
    progress_done()
    if t_done is None:
        raise RuntimeError(f"workers did not catch up within {timeout:.0f}s (processed "
                           f"{samples.get('kpi_events_processed_total', 0):,.0f}/{n:,}); logs: "
                           f"{[str(w.log_path) for w in workers]}")
    cpu_done = cpu_seconds()
    span = t_done - t_first
    rate = (n - n_first) / span if span > 0 and n > n_first else None
    dead = {labels_of(k).get("reason", "?"): v for k, v in samples.items() if k.startswith("kpi_events_dead_lettered_total")}
    cpu = (cpu_done - cpu_first) if cpu_done is not None and cpu_first is not None else None
    return {
        "workers": len(workers),
        "events": n,
        "processed_at_first_sample": n_first,
        "seconds_first_event_to_zero_lag": round(span, 3),
        "events_per_s": rate,
        "seconds_launch_to_metrics": round(t_metrics - t_launch, 3),
        "seconds_launch_to_first_event": round(t_first - t_launch, 3),
        "seconds_total_wall": round(t_done - t_launch, 3),
        "poll_seconds": CATCHUP_POLL,
        "worker_cpu_seconds": round(cpu, 2) if cpu is not None else None,
        "events_per_cpu_second": (n - n_first) / cpu if cpu else None,
        "worker_cpu_pct_of_one_core": round(cpu / span * 100, 1) if cpu is not None and span > 0 else None,
        "dead_lettered": dead,
        "rollups_published": samples.get("kpi_rollups_published_total"),
    }


def worker_log_problems(log_path: Path) -> dict:
    """Agent crashes and tracebacks in the worker log: a crashing stage can still show zero lag."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return {}
    crashes = re.findall(r"Crashed reason=(.*)", text)
    return {"agent_crashes": len(crashes), "tracebacks": text.count("Traceback (most recent call last)"),
            "first_crash": crashes[0].strip() if crashes else None}


# -- step 4: live feed, probes and the poller ----------------------------------------------------------
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


async def live_phases(args, bootstrap: str, topic: str, worker, suffix: str, results: dict) -> None:
    """The latency run, then (with --soak-seconds) the soak, on one producer and one poller."""
    from aiokafka import AIOKafkaProducer

    model = bench_model(args.profile, args.busy_share)
    pool = live_pool(args.seed + 1, int(args.rate * (args.warmup_seconds + args.latency_seconds + args.soak_seconds) * 1.05) + 1000,
                     model)
    gen = live_events(pool, f"L{suffix}.", pass_id_fields(model))
    idle_scrape = scrape_cost(worker.url)
    progress(f"one /metrics scrape of the idle worker: {idle_scrape['ms_p50']} ms p50 ({idle_scrape['bytes']:,} bytes)")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    poller = Poller(worker.url, args.poll_ms / 1000)
    poller.start()
    probes = ProbeLog(suffix)
    drain_timeout = min(600.0, max(60.0, args.latency_seconds * 3))
    try:
        warmup = None
        if args.warmup_seconds > 0:
            # The first live events move the worker from history (the backlog) to live time: one-off
            # work (closing every interval in between) that is reported apart from the steady state.
            progress(f"warm-up: {args.rate:,.0f} events/s for {args.warmup_seconds:.0f}s (probes reported apart)")
            warmup = await live_feed(producer, topic, gen, probes, args.rate, args.warmup_seconds, "warm-up",
                                     poller=poller)
        before = worker.scrape()
        progress(f"latency: {args.rate:,.0f} events/s for {args.latency_seconds:.0f}s, a probe every "
                 f"{PROBE_EVERY * 1000:.0f} ms, /metrics polled every {args.poll_ms:.0f} ms")
        feed = await live_feed(producer, topic, gen, probes, args.rate, args.latency_seconds, "latency", poller=poller)
        waited = await asyncio.to_thread(wait_for_probe, poller, feed["last_probe"], drain_timeout)
        lat = latency_summary(probes, poller, feed, waited)
        if warmup is not None:
            lat["warmup"] = latency_summary(probes, poller, warmup, waited)
            lat["warmup"]["feed"] = warmup
        after = poller.last or worker.scrape()
        lat.update(feed=feed, worker_processed=after.get("kpi_events_processed_total", 0)
                   - before.get("kpi_events_processed_total", 0),
                   dead_lettered={labels_of(k).get("reason", "?"): v for k, v in after.items()
                                  if k.startswith("kpi_events_dead_lettered_total")},
                   lag_after={t: sum(p.values()) for t, p in lag_by_topic(after).items()})
        lat["poll"]["idle_scrape"] = idle_scrape
        lat["poll"]["idle_scrape_share_pct"] = round(idle_scrape["ms_p50"] / lat["poll"]["period_ms_p50"] * 100, 1)
        lat["loop_holds"] = loop_holds(after)  # since the worker started: catch-up, warm-up and this run
        results["latency"] = lat
        results.setdefault("memory", {})["after_latency"] = proc_status(worker.pid)
        if args.soak_seconds > 0:
            rss: list[tuple[float, int]] = []
            t_start = time.monotonic()
            next_sample = [t_start]

            def sample(now: float) -> None:
                if now >= next_sample[0]:
                    next_sample[0] += RSS_EVERY
                    kb = proc_status(worker.pid).get("VmRSS")
                    if kb is not None:
                        rss.append((round(now - t_start, 1), kb))

            progress(f"soak: {args.rate:,.0f} events/s for {args.soak_seconds:.0f}s, worker RSS every {RSS_EVERY:.0f}s")
            feed = await live_feed(producer, topic, gen, probes, args.rate, args.soak_seconds, "soak",
                                   on_tick=sample, poller=poller)
            kb = proc_status(worker.pid).get("VmRSS")
            if kb is not None:
                rss.append((round(time.monotonic() - t_start, 1), kb))
            waited = await asyncio.to_thread(wait_for_probe, poller, feed["last_probe"], drain_timeout)
            results["soak"] = {"feed": feed, "rss_samples_kb": rss, **rss_growth(rss),
                               "latency": latency_summary(probes, poller, feed, waited),
                               "loop_holds": loop_holds(poller.last or worker.scrape())}
    finally:
        poller.stop()
        await producer.stop()


# -- the run -----------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=100_000, help="backlog size N (default 100000)")
    p.add_argument("--rate", type=float, default=2000, help="offered live rate, events/s (default 2000)")
    p.add_argument("--latency-seconds", type=float, default=30, help="length of the latency run (default 30)")
    p.add_argument("--warmup-seconds", type=float, default=5,
                   help="live feed before the latency run, its probes reported apart (default 5; 0: none)")
    p.add_argument("--soak-seconds", type=float, default=0, help="soak at --rate after the latency run (default 0: none)")
    p.add_argument("--workers", type=int, default=1,
                   help="also time the catch-up with this many workers in one group, on topics of their own (default 1: no)")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting Apache Kafka in a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep broker data, worker data and the event file (and, "
                   "with --bootstrap, this run's topics)")
    p.add_argument("--output", help="results JSON (default: bench-results.json in the run folder)")
    p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    p.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    p.add_argument("--profile", choices=PROFILES, default="realistic",
                   help="customers of the simulated center for every step: realistic (default; issue 19: 55%% "
                        "under id 0, one business account with --busy-share of the contacts, Zipf customers, "
                        "clock skew, missing optional fields) or uniform (a new customer per contact, the "
                        "figures published before issue 19); docs/simulator.md")
    p.add_argument("--beside", choices=(*PROFILES, "none"), default=None,
                   help="the profile whose replay and catch-up are measured too and printed beside "
                        "(default: the other one; none: skip)")
    p.add_argument("--busy-share", type=float, default=BENCH_BUSY_SHARE,
                   help=f"the business account's share of new contacts in the realistic profile (default "
                        f"{BENCH_BUSY_SHARE}: >= 20,000 contacts in 7 days from about --events 500000 on)")
    p.add_argument("--poll-ms", type=float, default=50,
                   help="/metrics poll interval in the latency run, 20-50 (default 50: every scrape runs on the "
                        "worker's event loop, so polling faster slows the worker down)")
    p.add_argument("--worker-env", action="append", default=[], metavar="KPI_X=value",
                   help="extra setting for the worker (repeatable), e.g. KPI_RETENTION_SECONDS=600")
    args = p.parse_args(argv)
    if args.beside is None:
        args.beside = next(p for p in PROFILES if p != args.profile)
    if args.beside == args.profile:
        args.beside = "none"
    if not 0 <= args.busy_share <= 1 - BENCH_UNIDENTIFIED:
        p.error(f"--busy-share: 0 to {1 - BENCH_UNIDENTIFIED:g}")
    if not 20 <= args.poll_ms <= 50:
        progress(f"note: --poll-ms {args.poll_ms:g} is outside the intended 20-50 ms")
    return args


def beside_catchup(args, bootstrap: str, events_path: Path, run_dir: Path) -> dict:
    """One worker's catch-up on the other profile's events, on topics and a group of its own."""
    from processor.services import KpiWorker

    with open(events_path, "rb") as fh:
        messages = [(event_key(json.loads(line)), line.rstrip(b"\n")) for line in fh]
    topics, app_id = scale_topics(args, bootstrap)
    asyncio.run(produce_bulk(bootstrap, topics["input_topic"], messages))
    worker = KpiWorker(bootstrap, work_dir=run_dir / "beside-worker", env=worker_env(args, topics, app_id))
    progress(f"beside: a kpi worker (app id {app_id}) on the {args.beside} profile's {len(messages):,} events; "
             f"its log: {worker.log_path}")
    try:
        c = measure_catchup([worker], len(messages), stage_topics(topics), args.partitions,
                            timeout=max(600.0, len(messages) / 200))
        c["loop_holds"] = loop_holds(worker.scrape())
    finally:
        worker.stop()
    c["log"] = str(worker.log_path)
    c["log_problems"] = worker_log_problems(worker.log_path)
    return c


def scale_out(args, bootstrap: str, events_path: Path, run_dir: Path, one: dict) -> dict:
    """The catch-up again with --workers workers in one group, on topics of their own holding the same events;
    then the steady-state comparison (`steady_scale`) of one worker and --workers workers."""
    from processor.services import KpiWorker

    with open(events_path, "rb") as fh:
        messages = [(event_key(json.loads(line)), line.rstrip(b"\n")) for line in fh]
    topics, app_id = scale_topics(args, bootstrap)
    asyncio.run(produce_bulk(bootstrap, topics["input_topic"], messages))
    env = worker_env(args, topics, app_id)
    workers = [KpiWorker(bootstrap, work_dir=run_dir / f"scale-worker-{i}", env=env) for i in range(args.workers)]
    progress(f"scaling: {args.workers} kpi workers (app id {app_id}) on {len(messages):,} events; logs: "
             f"{[str(w.log_path) for w in workers]}")
    try:
        c = measure_catchup(workers, len(messages), stage_topics(topics), args.partitions,
                            timeout=max(600.0, len(messages) / 200))
    finally:
        for w in workers:
            w.stop()
    c["ratio_to_one_worker"] = c["events_per_s"] / one["events_per_s"] if c["events_per_s"] and one["events_per_s"] else None
    c["logs"] = [str(w.log_path) for w in workers]
    c["log_problems"] = [worker_log_problems(w.log_path) for w in workers]
    steady = {count: steady_scale(args, bootstrap, messages, run_dir, count) for count in (1, args.workers)}
    one_steady, many_steady = steady[1]["events_per_s"], steady[args.workers]["events_per_s"]
    c["steady"] = {"one": steady[1], "many": steady[args.workers],
                   "ratio": many_steady / one_steady if one_steady and many_steady else None}
    return c


def run_names(kind: str = "bench") -> tuple[str, dict[str, str], str]:
    """A run's unique suffix, its topics (settings names -> topic names) and its app id."""
    suffix = uuid.uuid4().hex[:8]
    topics = {"input_topic": f"{kind}-{suffix}-events", "facts_topic": f"{kind}-{suffix}-facts",
              "rollup_topic": f"{kind}-{suffix}-rollups", "dead_letter_topic": f"{kind}-{suffix}-dead"}
    return suffix, topics, f"kpi-{kind}-{suffix}"


def scale_topics(args, bootstrap: str) -> tuple[dict, str]:
    from processor.topics import ensure_topics

    _, topics, app_id = run_names()
    ensure_topics(Settings(app_id=app_id, kafka={"bootstrap": bootstrap, "partitions": args.partitions, **topics}))
    return topics, app_id


def one_worker(args, bootstrap: str, topics: dict, app_id: str, run_dir: Path, results: dict):
    """The run's `kpi worker` (not started yet): its environment and log go into results["worker"]."""
    from processor.services import KpiWorker

    env = worker_env(args, topics, app_id)
    worker = KpiWorker(bootstrap, work_dir=run_dir / "worker", env=env)
    progress(f"starting kpi worker (app id {app_id}); its log: {worker.log_path}")
    results["worker"] = {"log": str(worker.log_path), "env": env, "url": worker.url}
    return worker


def worker_env(args, topics: dict, app_id: str) -> dict:
    """A worker's environment: this run's app id and topics, and every --worker-env setting."""
    env = {"KPI_APP_ID": app_id, "KPI_KAFKA__PARTITIONS": str(args.partitions),
           **{f"KPI_KAFKA__{k.upper()}": v for k, v in topics.items()}}
    for item in args.worker_env:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def steady_scale(args, bootstrap: str, messages: list, run_dir: Path, count: int) -> dict:
    """`count` workers of one group on empty topics of their own; once every one owns input partitions and
    the assignment has held for STEADY_HOLD seconds, the N events are produced, and the workers are timed
    from the first processed event to zero lag. Unlike the catch-up, no rebalance (and no changelog
    recovery) falls inside the span: what two workers do together against what one does, the same way."""
    from processor.services import KpiWorker

    topics, app_id = scale_topics(args, bootstrap)
    env = worker_env(args, topics, app_id)
    workers = [KpiWorker(bootstrap, work_dir=run_dir / f"steady-{count}-worker-{i}", env=env) for i in range(count)]
    progress(f"steady state: {count} kpi worker(s) (app id {app_id}) on empty topics, then {len(messages):,} events")

    producer = threading.Thread(target=lambda: asyncio.run(produce_bulk(bootstrap, topics["input_topic"], messages)),
                                name="steady-producer", daemon=True)

    def group_then_produce() -> None:  # produced while the workers are being timed, from the first event on
        wait_for_assignment(workers, topics["input_topic"], args.partitions)
        producer.start()

    try:
        c = measure_catchup(workers, len(messages), stage_topics(topics), args.partitions,
                            timeout=max(600.0, len(messages) / 200), after_start=group_then_produce)
    finally:
        if producer.is_alive():
            producer.join(timeout=60)
        for w in workers:
            w.stop()
    c["logs"] = [str(w.log_path) for w in workers]
    c["log_problems"] = [worker_log_problems(w.log_path) for w in workers]
    progress(f"steady state: {count} worker(s) {fmt_rate(c['events_per_s'])}")
    return c


STEADY_HOLD = 3.0  # seconds the group's assignment must hold before the steady-state run produces


def wait_for_assignment(workers: list, topic: str, partitions: int, timeout: float = 120.0) -> None:
    """Until each worker owns at least one partition of `topic`, together all of them, unchanged for STEADY_HOLD s."""
    series = series_key("kpi_assigned_partitions", {"topic": topic})
    deadline = time.monotonic() + timeout
    stable_since, last = None, None
    while time.monotonic() < deadline:
        try:
            owned = tuple(w.scrape().get(series, 0) for w in workers)
        except OSError:
            owned = None
        ok = owned is not None and all(owned) and sum(owned) == partitions
        if ok and owned == last:
            if time.monotonic() - stable_since >= STEADY_HOLD:
                progress(f"group settled: input partitions per worker {list(owned)}")
                return
        else:
            stable_since = time.monotonic()
        last = owned if ok else None
        time.sleep(CATCHUP_POLL)
    raise RuntimeError(f"the group did not settle within {timeout:.0f}s; logs: {[str(w.log_path) for w in workers]}")


def start_broker(run_dir: Path):
    """Apache Kafka (KRaft, from the cached Maven jars) in run_dir/kafka, started and ready."""
    from processor.services import ApacheKafka

    broker = ApacheKafka(run_dir / "kafka")
    progress(f"starting Apache Kafka in {broker.data_dir} (log {broker.log_path}) ...")
    t0 = time.monotonic()
    broker.start(timeout=120)
    progress(f"Apache Kafka {broker.version} ready at {broker.bootstrap} in {time.monotonic() - t0:.1f}s")
    return broker


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


def shut_down(args, worker, broker, topics: dict, app_id: str) -> None:
    """The end of a run: the worker stopped, this run's topics deleted from a --bootstrap broker
    (unless --keep), our own broker stopped."""
    if worker is not None:
        progress("stopping the worker ...")
        worker.stop()
    if args.bootstrap and not args.keep:
        try:
            delete_topics(args.bootstrap, list(topics.values()), app_id)
        except Exception as exc:  # cleanup only
            progress(f"could not delete this run's topics: {exc!r}")
    if broker is not None:
        progress("stopping Apache Kafka ...")
        broker.stop()


def delete_topics(bootstrap: str, names: list[str], app_id: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{app_id}-cleanup")
    try:
        doomed = [t for t in admin.list_topics() if t in names or t.startswith(app_id + "-")]
        if doomed:
            admin.delete_topics(doomed)
        progress(f"deleted {len(doomed)} topics of this run from {bootstrap}")
    finally:
        admin.close()


def summary_rows(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    t = TARGETS
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    ev = r.get("events", {})
    if ev.get("customers"):
        lp = ev["customers"]
        rows.append((f"log ({ev.get('profile')} profile)", f"{lp['placeholder_share'] * 100:.1f}% under id "
                     f"{lp['placeholder']!r}, busiest account {lp['busiest_account_contacts_in_7_days']:,} contacts in 7 days",
                     f">= 50% and >= {t['busy_account_contacts']:,}: {met(lp['meets_issue_19_log'])}"
                     if ev.get("profile") == "realistic" else ""))
    p = r.get("produce")
    if p:
        rows.append(("produce (aiokafka, acks=all)", fmt_rate(p["events_per_s"]), ""))
    b = r.get("baseline")
    if b:
        rows.append(("baseline consume + json.loads", fmt_rate(b["events_per_s"]), ""))
    c = r.get("catchup")
    if c:
        ratio = c.get("ratio_to_baseline")
        ok = c["events_per_s"] is not None and c["events_per_s"] >= t["worker_events_per_s"]
        rows.append(("worker catch-up (first event -> 0 lag)",
                     fmt_rate(c["events_per_s"]) + (f"  ({ratio:.4f}x baseline)" if ratio else ""),
                     f">= {t['worker_events_per_s']:,}/s: {met(ok)}"))
        rows.append(("worker total wall (launch -> 0 lag)", f"{c['seconds_total_wall']:.1f} s "
                     f"(first event after {c['seconds_launch_to_first_event']:.1f} s)", ""))
        if c.get("events_per_cpu_second"):
            rows.append(("worker events per CPU-second", f"{c['events_per_cpu_second']:,.0f}", ""))
        rows.append(("  event-loop holds during it", hold_text(c.get("loop_holds")),
                     f"<= {t['loop_hold_s'] * 1000:.0f} ms: {hold_met(c.get('loop_holds'))}"))
    bs = r.get("beside", {})
    if bs.get("catchup"):
        bc = bs["catchup"]
        rows.append((f"beside: {bs['profile']} catch-up", fmt_rate(bc["events_per_s"]), ""))
        rows.append(("  event-loop holds during it", hold_text(bc.get("loop_holds")), ""))
    sc = r.get("scaling")
    if sc:
        ok = sc["ratio_to_one_worker"] is not None and sc["ratio_to_one_worker"] >= 1.6
        rows.append((f"{sc['workers']} workers catch-up, together", fmt_rate(sc["events_per_s"])
                     + (f"  ({sc['ratio_to_one_worker']:.2f}x one worker)" if sc["ratio_to_one_worker"] else ""),
                     "(includes the rebalance when the second joins)"))
        st = sc.get("steady")
        if st:
            ok = st["ratio"] is not None and st["ratio"] >= 1.6
            rows.append((f"steady state: 1 / {sc['workers']} workers", f"{fmt_rate(st['one']['events_per_s'])} / "
                         f"{fmt_rate(st['many']['events_per_s'])}"
                         + (f"  ({st['ratio']:.2f}x)" if st["ratio"] else ""), f">= 1.6x where cores allow: {met(ok)}"))
    lat = r.get("latency")
    if lat:
        f = lat["feed"]
        ok = lat["p99_ms"] is not None and lat["p99_ms"] <= t["latency_p99_s"] * 1000
        rows.append(("latency offered rate", f"{f['offered_events_per_s']:,.0f} events/s (+ probes "
                     f"{f['offered_with_probes_per_s']:,.0f}/s), target {f['target_rate']:,.0f}/s", ""))
        rows.append(("event-to-gauge p50 / p99 / max", f"{lat['p50_text']} / {lat['p99_text']} / {lat['max_text']} "
                     f"({lat['detected']}/{lat['probes']} probes seen)", f"p99 <= {t['latency_p99_s'] * 1000:.0f} ms: {met(ok)}"))
        if "warmup" in lat:
            wu = lat["warmup"]
            rows.append((f"  warm-up before it ({wu['feed']['seconds']:.0f} s)",
                         f"{wu['p50_text']} / {wu['p99_text']} / {wu['max_text']} (not in the line above)", ""))
        rows.append(("  event-loop holds (since start)", hold_text(lat.get("loop_holds")),
                     f"<= {t['loop_hold_s'] * 1000:.0f} ms: {hold_met(lat.get('loop_holds'))}"))
        pr = lat["poll"]
        rows.append(("  poll resolution", f"every {pr['period_ms_p50']} ms (p50; target {pr['target_interval_ms']}), "
                     f"scrape {pr['scrape_ms_p50']} ms p50 (idle {pr['idle_scrape']['ms_p50']} ms = "
                     f"~{pr['idle_scrape_share_pct']}% of worker time)", ""))
    rp = r.get("replay")
    if rp and "error" in rp:
        rows.append(("kpi replay (same N events)", "failed (see the JSON)", ""))
    elif rp:
        rows.append((f"kpi replay (same N events, {r.get('events', {}).get('profile', '?')})", fmt_rate(rp["events_per_s"]),
                     f">= {t['replay_events_per_s']:,}/s: {met(rp['events_per_s'] >= t['replay_events_per_s'])}"))
        if rp.get("ratio_to_distinct"):
            rows.append(("  against a distinct customer per contact",
                         f"{fmt_rate(r['replay_distinct']['events_per_s'])} ({rp['ratio_to_distinct']:.2f}x)",
                         f">= {t['replay_ratio_to_distinct']:g}x: {met(rp['ratio_to_distinct'] >= t['replay_ratio_to_distinct'])}"))
    rb = r.get("replay_beside")
    if rb and "error" not in rb:
        rows.append((f"beside: kpi replay, {rb['log']}", fmt_rate(rb["events_per_s"]), ""))
    lp = r.get("worker", {}).get("log_problems")
    if lp is not None:
        rows.append(("worker log", "clean (no agent crash, no traceback)" if not (lp.get("agent_crashes") or lp.get(
            "tracebacks")) else f"{lp['agent_crashes']} agent crashes, {lp['tracebacks']} tracebacks: figures suspect", ""))
    m = r.get("memory", {})
    if m.get("peak_rss_kb"):
        rows.append(("worker peak RSS (VmHWM)", f"{m['peak_rss_kb'] / 1024:,.1f} MiB", ""))
    s = r.get("soak")
    if s:
        ok = soak_flat(s["growth_pct"])
        rows.append((f"soak RSS first / last / max ({s['feed']['seconds']:.0f} s)",
                     f"{s['rss_first_kb'] / 1024:,.1f} / {s['rss_last_kb'] / 1024:,.1f} / {s['rss_max_kb'] / 1024:,.1f} MiB,"
                     f" growth {s['growth_pct']:+.1f}%", f"<= {t['soak_rss_growth_pct']:.0f}% over 600 s: {met(ok)}"
                     + ("" if s["feed"]["seconds"] >= 600 else " (soak shorter than 600 s)")))
        sl = s["latency"]
        rows.append(("soak event-to-gauge p50 / p99 / max", f"{sl['p50_text']} / {sl['p99_text']} / {sl['max_text']}", ""))
    return rows


def print_summary(r: dict) -> None:
    rows = summary_rows(r)
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(b) for _, b, _ in rows)
    h = r["host"]
    figure("")
    figure(f"== contact-kpi benchmark: N={r['config']['events']:,} events, {r['config']['partitions']} partitions, "
           f"{h['cpus']} CPUs ({h['cpu_model']}), load avg {h['loadavg_at_start'][0]:.2f} at start, "
           f"Python {h['python']}, commit {h['git_commit']}"
           f"{' + local changes' if h['git_dirty_files'] else ''}, {h.get('core', 'KPI core: not recorded')} ==")
    figure(f"{'step':<{w0}}  {'figure':<{w1}}  target")
    figure(f"{'-' * w0}  {'-' * w1}  {'-' * 6}")
    for a, b, c in rows:
        figure(f"{a:<{w0}}  {b:<{w1}}  {c}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from processor.topics import ensure_topics

    suffix, topics, app_id = run_names()
    run_dir = Path(tempfile.mkdtemp(prefix="kpi-bench-"))
    output = Path(args.output).resolve() if args.output else run_dir / "bench-results.json"
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
                     "config": {**{k: v for k, v in vars(args).items()}, "app_id": app_id, **topics},
                     "host": host_info(), "targets": TARGETS, "run_dir": str(run_dir)}
    progress(f"run folder {run_dir}")
    broker = worker = None
    try:
        # -- 0. events and replay -------------------------------------------------------------------
        t0 = time.monotonic()
        events, hours = generate_events(args.events, args.seed, bench_model(args.profile, args.busy_share))
        events_path = run_dir / "events.jsonl"
        messages = [(event_key(ev), dumps(ev)) for ev in events]
        with open(events_path, "wb") as fh:
            for _, value in messages:
                fh.write(value + b"\n")
        span = (parse_ts_ms(events[-1]["ts"]) - parse_ts_ms(events[0]["ts"])) / 3_600_000
        results["events"] = {"count": len(events), "simulated_hours": round(hours, 2), "event_time_span_hours": round(span, 2),
                             "first_ts": events[0]["ts"], "last_ts": events[-1]["ts"], "file": str(events_path),
                             "bytes": events_path.stat().st_size, "seconds": round(time.monotonic() - t0, 2),
                             "profile": args.profile, "customers": log_profile(events)}
        progress(f"{len(events):,} events ({span:.1f} h of event time, {events_path.stat().st_size / 1e6:.1f} MB) "
                 f"written to {events_path}")
        lp = results["events"]["customers"]
        figure(f"log:       {args.profile} profile, {len(events):,} events: {profile_text(lp)}; issue 19's realistic log "
               f"(>= 50% under one placeholder id, one account >= 20,000 contacts in 7 days): "
               f"{'yes' if lp['meets_issue_19_log'] else 'no (at this --events / --busy-share)'}")
        distinct_path = run_dir / "events-distinct.jsonl"
        with open(distinct_path, "wb") as fh:
            for ev in distinct_customers(events):
                fh.write(dumps(ev) + b"\n")
        del events
        replays = [("replay", args.profile, events_path), ("replay_distinct", "same log, a distinct customer per contact",
                                                            distinct_path)]
        beside_path = None
        if args.beside != "none":
            beside_events, _ = generate_events(args.events, args.seed, bench_model(args.beside, args.busy_share))
            beside_path = run_dir / f"events-{args.beside}.jsonl"
            with open(beside_path, "wb") as fh:
                for ev in beside_events:
                    fh.write(dumps(ev) + b"\n")
            results["beside"] = {"profile": args.beside, "file": str(beside_path),
                                 "customers": log_profile(beside_events)}
            figure(f"beside:    {args.beside} profile, {len(beside_events):,} events: "
                   f"{profile_text(results['beside']['customers'])}")
            del beside_events
            replays.append(("replay_beside", f"{args.beside} profile", beside_path))
        for name, label, path in replays:
            try:  # independent of the rest: a failure is reported and the run goes on
                rp = run_replay(path, run_dir / f"{path.stem}-rollups.jsonl")
                figure(f"replay:    {fmt_rate(rp['events_per_s'])} on the {label} ({rp['events']:,} events in "
                       f"{rp['seconds']:.2f} s, {rp['rollup_records']:,} rollup records; `kpi replay` reported: "
                       f"{rp['reported_line']})")
            except RuntimeError as exc:
                rp = {"error": str(exc)}
                figure(f"replay:    FAILED on the {label}: {str(exc).strip().splitlines()[-1]}")
            rp["log"] = label
            results[name] = rp
        main_rate, distinct_rate = results["replay"].get("events_per_s"), results["replay_distinct"].get("events_per_s")
        if main_rate and distinct_rate:
            results["replay"]["ratio_to_distinct"] = main_rate / distinct_rate
            figure(f"           {args.profile} / distinct customers: {main_rate / distinct_rate:.2f}x "
                   f"(target >= {TARGETS['replay_ratio_to_distinct']:g}x)")

        # -- 1. broker, topics, produce ---------------------------------------------------------------
        if args.bootstrap:
            bootstrap = args.bootstrap
            progress(f"using the Kafka at {bootstrap}")
        else:
            broker = start_broker(run_dir)
            bootstrap = broker.bootstrap
            results["broker"] = {"bootstrap": bootstrap, "version": broker.version, "data_dir": str(broker.data_dir),
                                 "log": str(broker.log_path)}
        settings = Settings(app_id=app_id, kafka={"bootstrap": bootstrap, "partitions": args.partitions, **topics})
        created = ensure_topics(settings)
        progress(f"topics {', '.join(created) or '(already there)'} with {args.partitions} partitions")
        p = asyncio.run(produce_bulk(bootstrap, topics["input_topic"], messages))
        del messages
        results["produce"] = p
        figure(f"produce:   {fmt_rate(p['events_per_s'])} ({p['messages']:,} messages, {p['bytes'] / 1e6:.1f} MB "
               f"in {p['seconds']:.2f} s to {topics['input_topic']})")

        # -- 2. baseline -----------------------------------------------------------------------------
        b = asyncio.run(baseline_consume(bootstrap, topics["input_topic"], args.events))
        results["baseline"] = b
        figure(f"baseline:  {fmt_rate(b['events_per_s'])} (bare aiokafka consumer + json.loads, first to last message; "
               f"{fmt_rate(b['events_per_s_including_start'])} including consumer start)")

        # -- 3. worker catch-up ------------------------------------------------------------------------
        worker = one_worker(args, bootstrap, topics, app_id, run_dir, results)
        c = measure_catchup([worker], args.events, stage_topics(topics), args.partitions,
                            timeout=max(600.0, args.events / 200))
        c["ratio_to_baseline"] = c["events_per_s"] / b["events_per_s"] if c["events_per_s"] and b["events_per_s"] else None
        c["loop_holds"] = loop_holds(worker.scrape())
        results["catchup"] = c
        results["memory"] = {"after_catchup": proc_status(worker.pid)}
        figure(f"processor: {fmt_rate(c['events_per_s'])} from the first processed event to zero lag "
               f"({c['seconds_first_event_to_zero_lag']:.2f} s, /metrics polled every {CATCHUP_POLL:g} s; "
               + (f"{c['ratio_to_baseline']:.4f}x the baseline" if c["ratio_to_baseline"] else "no ratio") + ")")
        figure(f"           total wall {c['seconds_total_wall']:.1f} s from launch (/metrics up after "
               f"{c['seconds_launch_to_metrics']:.1f} s, first event processed by {c['seconds_launch_to_first_event']:.1f} s); "
               f"worker CPU {c['worker_cpu_seconds']} s in that span ({c['worker_cpu_pct_of_one_core']}% of one core)"
               + (f" = {c['events_per_cpu_second']:,.0f} events per CPU-second" if c["events_per_cpu_second"] else "")
               + f"; dead-lettered {c['dead_lettered'] or 'none'}")
        figure(f"           event-loop holds after the catch-up: {hold_text(c['loop_holds'])}")
        after_catchup = results["memory"]["after_catchup"]

        # -- 4./5. latency and soak ---------------------------------------------------------------------
        asyncio.run(live_phases(args, bootstrap, topics["input_topic"], worker, suffix, results))
        lat = results["latency"]
        f = lat["feed"]
        figure(f"latency:   event-to-gauge p50 {lat['p50_text']}, p99 {lat['p99_text']}, max {lat['max_text']} over "
               f"{lat['probes']} probes ({lat['missed']} not seen on /metrics before the wait ended); offered "
               f"{f['offered_events_per_s']:,.0f} events/s (target {f['target_rate']:,.0f}; "
               f"{f['offered_with_probes_per_s']:,.0f}/s with probe events) for {f['seconds']:.1f} s")
        pr = lat["poll"]
        figure(f"           poll resolution: /metrics scraped every {pr['period_ms_p50']} ms p50 ({pr['period_ms_p99']} ms p99; "
               f"target {pr['target_interval_ms']} ms), a scrape takes {pr['scrape_ms_p50']} ms p50 "
               f"({pr['scrape_ms_p99']} ms p99): each latency is late by at most one period + one scrape")
        figure(f"           a scrape costs the idle worker {pr['idle_scrape']['ms_p50']} ms ({pr['idle_scrape']['bytes']:,} "
               f"bytes), so this polling takes about {pr['idle_scrape_share_pct']}% of the worker's time "
               f"(a scrape was in flight {pr['scrape_share_of_wall_pct']}% of the run)")
        if "warmup" in lat:
            wu = lat["warmup"]
            figure(f"           warm-up before it ({wu['feed']['seconds']:.0f} s at the same rate, right after the backlog; "
                   f"not in the figures above): p50 {wu['p50_text']}, p99 {wu['p99_text']}, max {wu['max_text']} over "
                   f"{wu['probes']} probes")
        figure(f"           event-loop holds since the worker started (catch-up and live): {hold_text(lat['loop_holds'])}")
        figure(f"           worker processed {lat['worker_processed']:,.0f} events from the start of the run to the end "
               f"of the wait, lag after it "
               f"{lat['lag_after']}, dead-lettered so far {lat['dead_lettered'] or 'none'}")
        mem = results["memory"]
        final = proc_status(worker.pid)
        mem["final"] = final
        # The kernel updates VmHWM lazily, so the peak is the largest of every reading taken.
        readings = [v for snap in (after_catchup, mem.get("after_latency", {}), final) for v in snap.values()]
        readings += [kb for _, kb in results.get("soak", {}).get("rss_samples_kb", [])]
        mem["peak_rss_kb"] = max(readings, default=None)
        figure(f"memory:    worker peak RSS (VmHWM) {(mem['peak_rss_kb'] or 0) / 1024:,.1f} MiB "
               f"(VmHWM after catch-up {after_catchup.get('VmHWM', 0) / 1024:,.1f} MiB; RSS now "
               f"{final.get('VmRSS', 0) / 1024:,.1f} MiB)")
        s = results.get("soak")
        if s:
            figure(f"soak:      RSS first {s['rss_first_kb'] / 1024:,.1f} MiB, last {s['rss_last_kb'] / 1024:,.1f} MiB, "
                   f"max {s['rss_max_kb'] / 1024:,.1f} MiB, growth {s['growth_pct']:+.1f}% over {s['feed']['seconds']:.0f} s "
                   f"({len(s['rss_samples_kb'])} samples; second half {s['growth_pct_second_half'] or 0:+.1f}%); offered "
                   f"{s['feed']['offered_events_per_s']:,.0f} events/s; latency p50 {s['latency']['p50_text']}, "
                   f"p99 {s['latency']['p99_text']}, max {s['latency']['max_text']}")
            retention = float(results["worker"]["env"].get("KPI_RETENTION_SECONDS", os.environ.get("KPI_RETENTION_SECONDS", 7200)))
            if s["feed"]["seconds"] < retention:
                figure(f"           note: contact state is kept for retention_seconds ({retention:g} s) of event time, "
                       "so a soak shorter than that grows state by design")
        # -- beside: the other profile's catch-up, on topics of its own, with the machine to itself ---------
        if beside_path is not None:
            progress(f"stopping the first worker: the {args.beside} profile's catch-up has the machine to itself ...")
            worker.stop()
            bc = beside_catchup(args, bootstrap, beside_path, run_dir)
            results["beside"]["catchup"] = bc
            figure(f"beside:    {args.beside} profile catch-up {fmt_rate(bc['events_per_s'])} from the first processed "
                   f"event to zero lag ({bc['seconds_first_event_to_zero_lag']:.2f} s; {args.profile}: "
                   f"{fmt_rate(results['catchup']['events_per_s'])}); event-loop holds: {hold_text(bc['loop_holds'])}")
        # -- 6. scaling: the same N events on fresh topics, read by --workers workers of one group ----------
        if args.workers > 1:
            progress("stopping the first worker: the scaling run has the machine to itself ...")
            worker.stop()
            sc = scale_out(args, bootstrap, events_path, run_dir, results["catchup"])
            results["scaling"] = sc
            figure(f"scaling:   {sc['workers']} workers together {fmt_rate(sc['events_per_s'])} from the first "
                   f"processed event to zero lag ({sc['ratio_to_one_worker']:.2f}x one worker's "
                   f"{fmt_rate(results['catchup']['events_per_s'])}; {results['host']['cpus']} CPUs shared with the "
                   f"broker); CPU {sc['worker_cpu_seconds']} s between them")
            st = sc["steady"]
            figure(f"           steady state (group settled on empty topics, then the N events produced): one worker "
                   f"{fmt_rate(st['one']['events_per_s'])}, {sc['workers']} workers {fmt_rate(st['many']['events_per_s'])}"
                   + (f" ({st['ratio']:.2f}x)" if st["ratio"] else "") + f"; CPU {st['one']['worker_cpu_seconds']} s / "
                   f"{st['many']['worker_cpu_seconds']} s")
        return_code = 0
    except BaseException as exc:
        results["error"] = repr(exc)
        return_code = 130 if isinstance(exc, KeyboardInterrupt) else 1
        progress(f"benchmark failed: {exc!r}")
        if worker is not None:
            progress(worker.log_tail(20))
    finally:
        shut_down(args, worker, broker, topics, app_id)
        if not args.keep:
            for bulky in (run_dir / "kafka" / "kraft-logs", run_dir / "worker" / "data", run_dir / "beside-worker" / "data",
                          *run_dir.glob("events*.jsonl")):
                if bulky.is_dir():
                    shutil.rmtree(bulky, ignore_errors=True)
                elif bulky.exists():
                    bulky.unlink()
    if worker is not None:
        problems = worker_log_problems(worker.log_path)
        results["worker"]["log_problems"] = problems
        if problems.get("agent_crashes") or problems.get("tracebacks"):
            figure(f"WARNING: the worker log shows {problems['agent_crashes']} agent crashes and "
                   f"{problems['tracebacks']} tracebacks (first: {problems['first_crash']}); the figures above "
                   f"are not those of a healthy worker. Log: {worker.log_path}")
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results["host"]["loadavg_at_end"] = os.getloadavg()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if return_code == 0:
        print_summary(results)
    figure("")
    figure(f"results written to {output}")
    if "worker" in results:
        figure(f"worker log: {results['worker']['log']}")
    if "broker" in results:
        figure(f"broker folder: {results['broker']['data_dir']} (log {results['broker']['log']})"
               + ("" if args.keep else "; log segments deleted, --keep keeps them"))
    return return_code


if __name__ == "__main__":
    raise SystemExit(main())
