"""Memory soak in the steady state: a worker that holds every horizon's worth of state, fed at --rate.

    python scripts/soak_steady.py [--history-days 95] [--rate 2000] [--soak-seconds 600] [--poll-ms 250]
                                  [--bootstrap host:port] [--partitions 4] [--seed 7] [--keep]
                                  [--profile realistic|uniform] [--busy-share 0.38]
                                  [--output results.json] [--worker-env KPI_X=value ...]

Issue 19's latency target (p99 event-to-gauge at 2,000 events/s with 30 days of realistic history
in state): `--history-days 30 --soak-seconds 300` (about 2.2 million history events).

Why a second soak: the figures keep state by event time, for the retention (2 h), the recontact
window (7 days) and the post-contact retention horizons (30/60/90 days). `scripts/bench.py
--soak-seconds` feeds new contacts at wall-clock time, so in ten minutes nothing reaches any of
those horizons and memory grows with every contact by design (docs/memory.md#measured-on-4-december-2026). Here the worker
first reads --history-days of the simulated contact center (a backlog, every horizon passed), and
the soak then goes on with the following simulated days at --rate events/s: the state expires as
fast as it is added, and RSS shows whether anything grows that should not (a leak).

One run:
  1. the simulated center (the seed's pool of about 200,000 events, 68 hours, again and again with
     fresh contact, agent and event ids and later times; with the realistic profile, the default, the
     customers stay: half the contacts under id 0, a business account, Zipf customers, see
     docs/simulator.md) from now - (history + soak days + 1 day) on; every event is in the past;
  2. start Apache Kafka unless --bootstrap is given; produce --history-days of it as a backlog;
  3. a `kpi worker` catches up on it (events/s, RSS after);
  4. the soak: the following days at --rate events/s for --soak-seconds, worker RSS every 10 s and
     probes (below), then the wait for zero lag; growth over the soak and over its second half.
Event-to-gauge latency in the soak: a probe contact (created, queued, abandoned) in the queue
`bench-probe` every 100 ms, at the event time of the latest event sent, and /metrics polled every
--poll-ms until contact_queue_wait_seconds_count of that queue reaches the probe's sequence number.
That count is cumulative (bench.py's probe gauge, today's offered, would restart at every simulated
midnight, about every 40 s here). Progress on stderr, figures on stdout, results as JSON (--output).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BENCH_BUSY_SHARE, PROBE_EVERY, PROBE_QUEUE, PROFILES, RSS_EVERY, TARGETS, Poller,  # noqa: E402
                      ProbeLog, bench_model, dumps, event_key, figure, hold_met, hold_text, host_info, lag_by_topic,
                      latency_summary, live_pool, log_profile, loop_holds, measure_catchup, pass_id_fields,
                      profile_text, proc_status, progress, progress_done, rss_growth, run_names, shut_down,
                      soak_flat, one_worker, stage_topics, start_broker, wait_for_probe, worker_log_problems)

from processor.core.events import format_ts, parse_ts_ms  # noqa: E402
from processor.core.settings import DAY_MS  # noqa: E402
from processor.services.worker import series_key  # noqa: E402

PROBE_COUNT = series_key("contact_queue_wait_seconds_count", {"queue": PROBE_QUEUE, "channel": "voice"})


def center(pool: list[dict], first_ms: int, fields: tuple[str, ...]):
    """The pool's events again and again from first_ms on, each pass later by the pool's span and with
    ids of its own in `fields` (no contact or agent of one pass meets another; with realistic customers
    the customer ids stay: one customer base, the busy account and the placeholder hot pass after pass):
    (ts_ms, key, value)."""
    import orjson

    times = [parse_ts_ms(ev["ts"]) for ev in pool]
    start = min(times)
    span = max(times) - start + 60_000
    k = 0
    while True:
        shift = first_ms - start + k * span
        prefix = f"P{k}-"
        for ev, ts in zip(pool, times):
            ev = dict(ev)
            for f in fields:
                if isinstance(ev.get(f), str):
                    ev[f] = prefix + ev[f]
            ev["ts"] = format_ts(ts + shift)
            yield ts + shift, event_key(ev), orjson.dumps(ev)
        k += 1


def _failures(failed: list):
    """A delivery callback that keeps the futures that failed."""
    return lambda fut: failed.append(fut) if fut.cancelled() or fut.exception() is not None else None


async def produce_until(bootstrap: str, topic: str, events, until_ms: int) -> dict:
    """The history: events up to until_ms, as fast as the producer takes them (acks=all)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10,
                                max_batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    failed: list = []
    n = size = 0
    pending = None
    t0 = time.monotonic()
    try:
        for ts, key, value in events:
            if ts >= until_ms:
                pending = (ts, key, value)  # the soak's first event
                break
            (await producer.send(topic, value, key=key)).add_done_callback(_failures(failed))
            n += 1
            size += len(value)
            if n % 50_000 == 0:
                progress(f"history: produced {n:,} events up to {format_ts(ts)} ({n / (time.monotonic() - t0):,.0f}/s)",
                         end="")
        await producer.flush()
    finally:
        await producer.stop()
    progress_done()
    if failed:
        raise RuntimeError(f"{len(failed)} history messages were not delivered: {failed[0].exception()!r}")
    return {"events": n, "bytes": size, "seconds": round(time.monotonic() - t0, 1), "pending": pending}


async def soak_feed(bootstrap: str, topic: str, events, rate: float, seconds: float, worker,
                    probes: ProbeLog, poller: Poller) -> dict:
    """The following days at `rate` events/s for `seconds`, the worker's RSS every RSS_EVERY seconds,
    and a probe contact every PROBE_EVERY s at the event time of the latest event sent."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    failed: list = []
    rss: list[tuple[float, int]] = []
    sent = probe_events = 0
    first_ts = last_ts = None
    first_probe = len(probes.sent) + 1
    t0 = time.monotonic()
    next_sample = next_progress = next_probe = t0
    max_burst = max(1, int(rate * 0.05))
    try:
        while True:
            now = time.monotonic()
            elapsed = now - t0
            if now >= next_sample:
                next_sample += RSS_EVERY
                kb = proc_status(worker.pid).get("VmRSS")
                if kb is not None:
                    rss.append((round(elapsed, 1), kb))
            if elapsed >= seconds:
                break
            due = min(int(elapsed * rate) - sent, max_burst)
            for _ in range(max(0, due)):
                ts, key, value = next(events)
                first_ts = ts if first_ts is None else first_ts
                last_ts = ts
                (await producer.send(topic, value, key=key)).add_done_callback(_failures(failed))
                sent += 1
            if now >= next_probe and last_ts is not None:
                for ev in probes.events(last_ts):
                    (await producer.send(topic, dumps(ev), key=event_key(ev))).add_done_callback(_failures(failed))
                    probe_events += 1
                next_probe = max(next_probe + PROBE_EVERY, now)  # after a stall: one probe, not a burst
            if now >= next_progress:
                next_progress += 1
                mib = rss[-1][1] / 1024 if rss else 0
                progress(f"soak: {elapsed:5.1f}/{seconds:.0f}s, sent {sent:,} ({sent / max(elapsed, 1e-9):,.0f}/s), "
                         f"event time {format_ts(last_ts) if last_ts else '-'}, worker RSS {mib:,.0f} MiB, "
                         f"probes seen {poller.value():,.0f}/{len(probes.sent):,}", end="")
            wake = min(t0 + (sent + 1) / rate, next_probe)
            await asyncio.sleep(max(0.0, min(wake - time.monotonic(), 0.01)))
        await producer.flush()
    finally:
        await producer.stop()
    progress_done()
    if failed:
        raise RuntimeError(f"{len(failed)} soak messages were not delivered: {failed[0].exception()!r}")
    elapsed = time.monotonic() - t0
    return {"events": sent, "probe_events": probe_events, "seconds": round(elapsed, 1),
            "offered_events_per_s": sent / elapsed,
            "first_ts": format_ts(first_ts) if first_ts else None, "last_ts": format_ts(last_ts) if last_ts else None,
            "simulated_days": round((last_ts - first_ts) / DAY_MS, 2) if first_ts else 0, "rss_samples_kb": rss,
            "first_probe": first_probe, "last_probe": len(probes.sent),
            "wall_start": time.time() - elapsed, "wall_end": time.time()}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--history-days", type=float, default=95,
                   help="simulated days read as a backlog before the soak (default 95: past the 90-day horizon)")
    p.add_argument("--rate", type=float, default=2000, help="offered soak rate, events/s (default 2000)")
    p.add_argument("--soak-seconds", type=float, default=600, help="length of the soak (default 600)")
    p.add_argument("--bootstrap", help="use this Kafka instead of starting Apache Kafka in a temporary folder")
    p.add_argument("--poll-ms", type=float, default=250, help="/metrics poll interval in the soak (default 250)")
    p.add_argument("--partitions", type=int, default=4, help="partitions per topic (default 4)")
    p.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    p.add_argument("--profile", choices=PROFILES, default="realistic",
                   help="customers of the simulated center (default realistic, as scripts/bench.py: 55%% under "
                        "id 0, one business account, Zipf customers; uniform: a new customer per contact)")
    p.add_argument("--busy-share", type=float, default=BENCH_BUSY_SHARE,
                   help=f"the business account's share of new contacts, realistic profile (default {BENCH_BUSY_SHARE})")
    p.add_argument("--keep", action="store_true", help="keep broker data and worker data (and, with --bootstrap, "
                   "this run's topics)")
    p.add_argument("--output", help="results JSON (default: soak-results.json in the run folder)")
    p.add_argument("--worker-env", action="append", default=[], metavar="KPI_X=value",
                   help="extra setting for the worker (repeatable)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from processor.config import Settings
    from processor.topics import ensure_topics

    args = parse_args(argv)
    _, topics, app_id = run_names("soak")
    run_dir = Path(tempfile.mkdtemp(prefix="kpi-soak-"))
    output = Path(args.output).resolve() if args.output else run_dir / "soak-results.json"
    results: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
                     "config": {**vars(args), "app_id": app_id, **topics}, "host": host_info(),
                     "target_rss_growth_pct": TARGETS["soak_rss_growth_pct"], "run_dir": str(run_dir)}
    progress(f"run folder {run_dir}")
    broker = worker = None
    try:
        model = bench_model(args.profile, args.busy_share)
        pool = live_pool(args.seed, 200_000, model)
        lp = log_profile(pool)
        times = [parse_ts_ms(ev["ts"]) for ev in pool]
        pool_days = (max(times) - min(times)) / DAY_MS
        per_day = len(pool) / pool_days
        # the pool is repeated with the same customer ids: a week of history holds 7 / pool_days passes
        busiest = sum(1 for ev in pool if ev["type"] == "contact.created" and ev["customer_id"] == lp["busiest_account"])
        lp["busiest_account_contacts_per_7_days_repeated"] = (round(busiest * 7 / pool_days)
                                                              if model.customers.realistic and busiest else None)
        results["pool"] = {"profile": args.profile, "customers": lp, "days": round(pool_days, 2)}
        figure(f"center:    {args.profile} profile, a pool of {len(pool):,} events ({pool_days:.1f} days) repeated: "
               f"{profile_text(lp)}" + (f"; the customer ids stay from pass to pass, so the busiest account has about "
                                        f"{lp['busiest_account_contacts_per_7_days_repeated']:,} contacts in any 7 days"
                                        if lp["busiest_account_contacts_per_7_days_repeated"] else ""))
        soak_days = args.rate * args.soak_seconds / per_day
        now_ms = int(time.time() * 1000)
        first_ms = (now_ms // DAY_MS - int(args.history_days + soak_days) - 2) * DAY_MS  # a UTC midnight
        history_end = first_ms + round(args.history_days * DAY_MS)
        results["center"] = {"events_per_day": round(per_day), "history_from": format_ts(first_ms),
                             "history_until": format_ts(history_end), "soak_days_expected": round(soak_days, 1)}
        progress(f"simulated center: about {per_day:,.0f} events a day; history {format_ts(first_ms)} .. "
                 f"{format_ts(history_end)}, then about {soak_days:.1f} days in the soak")
        events = center(pool, first_ms, pass_id_fields(model))

        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker = start_broker(run_dir)
            bootstrap = broker.bootstrap
        settings = Settings(app_id=app_id, kafka={"bootstrap": bootstrap, "partitions": args.partitions, **topics})
        ensure_topics(settings)
        h = asyncio.run(produce_until(bootstrap, topics["input_topic"], events, history_end))
        events = itertools.chain([h.pop("pending")], events)
        results["history"] = h
        figure(f"history:   {h['events']:,} events ({args.history_days:g} simulated days, {h['bytes'] / 1e9:.2f} GB) "
               f"produced in {h['seconds']:.0f} s")

        worker = one_worker(args, bootstrap, topics, app_id, run_dir, results)
        c = measure_catchup([worker], h["events"], stage_topics(topics), args.partitions,
                            timeout=max(1800.0, h["events"] / 1000))
        c["rss_after_kb"] = proc_status(worker.pid)
        c["loop_holds"] = loop_holds(worker.scrape())
        results["catchup"] = c
        figure(f"catch-up:  {c['events_per_s']:,.0f} events/s over the history ({c['seconds_first_event_to_zero_lag']:.0f} s); "
               f"worker RSS after it {c['rss_after_kb'].get('VmRSS', 0) / 1024:,.0f} MiB")
        figure(f"           event-loop holds in the catch-up: {hold_text(c['loop_holds'])}")

        progress(f"soak: {args.rate:,.0f} events/s for {args.soak_seconds:.0f}s, worker RSS every {RSS_EVERY:.0f}s")
        probes, poller = ProbeLog(app_id), Poller(worker.url, args.poll_ms / 1000, series=PROBE_COUNT)
        poller.start()
        try:
            s = asyncio.run(soak_feed(bootstrap, topics["input_topic"], events, args.rate, args.soak_seconds, worker,
                                      probes, poller))
            waited = wait_for_probe(poller, s["last_probe"], timeout=600)
        finally:
            poller.stop()
        total = h["events"] + s["events"] + s["probe_events"]
        end = worker.wait_for(lambda m: m.get("kpi_events_processed_total", 0) >= total and not any(
            v for t in lag_by_topic(m).values() for v in t.values()), timeout=600, what="zero lag after the soak")
        s.update(rss_growth(s["rss_samples_kb"]), latency=latency_summary(probes, poller, s, waited),
                 dead_lettered={k: v for k, v in end.items() if k.startswith("kpi_events_dead_lettered_total")},
                 loop_holds=loop_holds(end))
        results["soak"] = s
        verdict = "met" if soak_flat(s["growth_pct"]) else "NOT met"
        figure(f"soak:      {s['events']:,} events at {s['offered_events_per_s']:,.0f} events/s for {s['seconds']:.0f} s "
               f"(event time {s['first_ts']} .. {s['last_ts']}, {s['simulated_days']:g} simulated days), zero lag after it")
        figure(f"           worker RSS first {s['rss_first_kb'] / 1024:,.0f} MiB, last {s['rss_last_kb'] / 1024:,.0f} MiB, max "
               f"{s['rss_max_kb'] / 1024:,.0f} MiB: growth {s['growth_pct']:+.1f}% (second half "
               f"{s['growth_pct_second_half'] or 0:+.1f}%; target: no growth beyond {TARGETS['soak_rss_growth_pct']:g}%: {verdict})")
        lat = s["latency"]
        figure(f"           event-to-gauge latency over {lat['probes']:,} probes: p50 {lat['p50_text']}, p99 {lat['p99_text']}, "
               f"max {lat['max_text']} (target: p99 at most {TARGETS['latency_p99_s']:g} s: "
               f"{'met' if lat['p99_ms'] is not None and lat['p99_ms'] <= TARGETS['latency_p99_s'] * 1000 else 'NOT met'})")
        figure(f"           event-loop holds since the worker started (catch-up and soak): {hold_text(s['loop_holds'])} "
               f"(target: longest at most {TARGETS['loop_hold_s'] * 1000:.0f} ms: {hold_met(s['loop_holds'])})")
        figure(f"           dead-lettered: {s['dead_lettered'] or 'none'}")
        return 0
    except BaseException as exc:
        results["error"] = repr(exc)
        progress(f"soak failed: {exc!r}")
        if worker is not None:
            progress(worker.log_tail(20))
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    finally:
        shut_down(args, worker, broker, topics, app_id)
        if worker is not None:
            results["worker"]["log_problems"] = problems = worker_log_problems(worker.log_path)
            if problems.get("agent_crashes") or problems.get("tracebacks"):
                figure(f"WARNING: the worker log shows {problems['agent_crashes']} agent crashes and "
                       f"{problems['tracebacks']} tracebacks: {worker.log_path}")
        if not args.keep:
            for bulky in (run_dir / "kafka" / "kraft-logs", run_dir / "worker" / "data"):
                shutil.rmtree(bulky, ignore_errors=True)
        results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2, default=str) + "\n")
        figure(f"results written to {output}")


if __name__ == "__main__":
    sys.exit(main())
