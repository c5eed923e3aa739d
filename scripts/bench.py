"""End-to-end benchmark of the KPI processor on a real Apache Kafka broker (a benchmark, not a test).

    python scripts/bench.py [--events 100000] [--rate 2000] [--latency-seconds 30] [--soak-seconds 0]
                            [--bootstrap host:port] [--keep] [--output results.json]
                            [--warmup-seconds 5] [--poll-ms 50] [--partitions 4] [--seed 7]
                            [--workers 2] [--worker-env KPI_X=value ...] [--memory-probe]
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
     the live feed goes on at --rate; the housekeeping passes that outlasted their interval (worker
     log), and with --memory-probe what was alive at the peak (Python blocks, malloc; benchlib/memory.py);
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
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (BENCH_BUSY_SHARE, BENCH_UNIDENTIFIED, CATCHUP_POLL, PROBE_EVERY, PROFILES,  # noqa: E402
                      Poller, ProbeLog, RSS_EVERY, TARGETS, baseline_consume, bench_model, distinct_customers, dumps,
                      event_key, figure, fmt_rate, generate_events, hold_met, hold_text, host_info,
                      housekeeping_overruns, labels_of, lag_by_topic, latency_summary, live_events, live_feed,
                      live_pool, log_profile, loop_holds, measure_catchup, memory_text, one_worker, pass_id_fields,
                      probe_summary, proc_status, produce_bulk, profile_text, progress, rss_growth, run_names,
                      run_replay, scrape_cost, shut_down, soak_flat, stage_topics, start_broker, wait_for_probe,
                      worker_env, worker_log_problems)

from processor.config import Settings  # noqa: E402
from processor.core.events import parse_ts_ms  # noqa: E402
from processor.services.worker import series_key  # noqa: E402


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
    p.add_argument("--memory-probe", action="store_true",
                   help="sample the first worker's memory every second (RSS, Python blocks, malloc) into "
                        "worker-memory.jsonl in the run folder, and print what was alive at its peak")
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


def scale_topics(args, bootstrap: str) -> tuple[dict, str]:
    from processor.topics import ensure_topics

    _, topics, app_id = run_names()
    ensure_topics(Settings(app_id=app_id, kafka={"bootstrap": bootstrap, "partitions": args.partitions, **topics}))
    return topics, app_id


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
    if m.get("housekeeping_overruns", {}).get("overruns"):
        o = m["housekeeping_overruns"]
        rows.append(("  housekeeping passes over their interval", f"{o['overruns']}, longest {o['longest_seconds']:.1f} s", ""))
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
        mem["housekeeping_overruns"] = housekeeping_overruns(worker.log_path)
        if args.memory_probe:
            mem["probe"] = probe_summary(run_dir / "worker-memory.jsonl")
        figure(f"           {memory_text(mem.get('probe', {}), mem['housekeeping_overruns'])}")
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
