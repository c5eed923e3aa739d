"""`kpi`: the command line. Every long-running command prints progress and where its output went."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .config import ConfigError, load_settings


def _settings(args):
    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_replay(args) -> int:
    from .replay import run_replay

    from .replay import not_after_bound

    s = _settings(args)
    try:  # the wall clock at the start of the replay, as a worker's bound at the time of reading
        not_after_ms = not_after_bound(args.not_after, s.max_future_seconds)
    except ValueError as exc:
        print(f"kpi replay: {exc}", file=sys.stderr)
        return 2
    return run_replay(Path(args.input), Path(args.output), s.engine(),
                      Path(args.dead_letters) if args.dead_letters else None, flush=not args.no_flush,
                      not_after_ms=not_after_ms)


def cmd_worker(args) -> int:
    s = _settings(args)
    from faust.worker import Worker

    from .app import create_app
    from .core import describe
    from .topics import ensure_topics

    ensure_topics(s)
    app, _ = create_app(s)
    print(f"worker {s.app_id}: consuming {s.kafka.input_topic} on {s.kafka.bootstrap}; "
          f"gauges at http://{s.web_host}:{s.web_port}/metrics; rollups to {s.kafka.rollup_topic}; "
          f"dead letters to {s.kafka.dead_letter_topic}; {describe()}", file=sys.stderr, flush=True)
    worker = Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def cmd_simulate(args) -> int:
    from .simulator import DEFAULT_MODEL, ModelError, Simulation, delivered_events, dumps, load_model

    for name in ("duplicates", "disorder", "hours", "speed"):
        if getattr(args, name) < 0 or (name == "duplicates" and args.duplicates > 1):
            print(f"--{name}: out of range ({getattr(args, name)})", file=sys.stderr)
            return 2
    try:
        model = load_model(args.model) if args.model else DEFAULT_MODEL
    except ModelError as exc:
        print(f"invalid simulation model {args.model}: {exc}", file=sys.stderr)
        return 2
    settings = _settings(args) if (args.truth or not args.output) else None
    sim = Simulation(model, seed=args.seed, start=_start_epoch(args.start), duration_seconds=args.hours * 3600,
                     duplicate_probability=args.duplicates, disorder_seconds=args.disorder)
    events = delivered_events(sim)
    if args.truth:
        truth = sim.truth(settings.engine())
        with open(args.truth, "w") as fh:
            for rec in truth:
                fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        print(f"wrote {len(truth):,} ground-truth queue_interval records to {args.truth}", file=sys.stderr)
    if args.output:
        with open(args.output, "w") as fh:
            for ev in events:
                fh.write(dumps(ev) + "\n")
        print(f"wrote {len(events):,} events to {args.output}", file=sys.stderr)
        return 0
    return asyncio.run(_produce(events, settings, args.bootstrap, args.topic, args.speed))


def cmd_produce(args) -> int:
    events = [json.loads(line) for line in open(args.input) if line.strip()]
    return asyncio.run(_produce(events, _settings(args), args.bootstrap, args.topic, args.speed))


def _start_epoch(text: str | None) -> float:
    if not text:
        return float(int(time.time()))
    from .core.events import parse_ts_ms
    return parse_ts_ms(text) / 1000


async def _produce(events: list[dict], settings, bootstrap: str | None, topic: str | None, speed: float) -> int:
    """Send events keyed as the contract says; speed 0 = as fast as possible, 1 = real time."""
    from aiokafka import AIOKafkaProducer

    from .core.events import parse_ts_ms
    from .topics import aiokafka_security, ensure_topics

    if bootstrap:
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap})})
    bootstrap, topic = settings.kafka.bootstrap, topic or settings.kafka.input_topic
    if topic == settings.kafka.input_topic:
        ensure_topics(settings)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", **aiokafka_security(settings))
    await producer.start()
    started = time.monotonic()
    first_ts = parse_ts_ms(events[0]["ts"]) / 1000 if events else 0
    try:
        for n, ev in enumerate(events, 1):
            if speed > 0:
                due = (parse_ts_ms(ev["ts"]) / 1000 - first_ts) / speed
                delay = due - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            key = ev.get("contact_id") or ev.get("agent_id") or ev.get("customer_id") or ""
            await producer.send(topic, json.dumps(ev, separators=(",", ":")).encode(), key=key.encode())
            if n % 1000 == 0 or n == len(events):
                print(f"\r  sent {n:,}/{len(events):,} events to {topic}", end="", file=sys.stderr, flush=True)
        await producer.flush()
    finally:
        await producer.stop()
    print(f"\nproduced {len(events):,} events to {topic} on {bootstrap}", file=sys.stderr)
    return 0


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    """The main job: a broker (embedded Tansu unless --bootstrap), a worker, and the simulated feed."""
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # `kill` cleans up like Ctrl-C
    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from .services.tansu import TansuBroker
        broker = TansuBroker()
        broker.start()
        bootstrap = broker.bootstrap
        print(f"embedded Tansu broker (memory only) at {bootstrap}", file=sys.stderr)
    env = dict(os.environ, KPI_KAFKA__BOOTSTRAP=bootstrap, KPI_WEB_PORT=str(args.port))
    if args.config:
        env["KPI_CONFIG"] = str(args.config)
    logdir = Path(tempfile.mkdtemp(prefix="kpi-run-"))
    worker_log = open(logdir / "worker.log", "w")
    worker = subprocess.Popen([sys.executable, "-m", "processor.cli", "worker"], env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    print(f"worker started (pid {worker.pid}); its log: {logdir / 'worker.log'}", file=sys.stderr)
    print(f"gauges: http://127.0.0.1:{args.port}/metrics", file=sys.stderr)
    feed = subprocess.Popen([sys.executable, "-m", "processor.cli", "simulate", "--bootstrap", bootstrap,
                             "--speed", str(args.speed), "--hours", str(args.hours)], env=env)
    try:
        feed.wait()
        print("sample feed finished; the worker keeps serving /metrics (Ctrl-C to stop)", file=sys.stderr)
        worker.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (feed, worker):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if broker is not None:
            broker.stop()
    return 0


def cmd_wallboard(args) -> int:
    """Serve the wallboard page, fed from the Redis live snapshot that the workers write."""
    url = args.redis_url
    if not url:
        secret = _settings(args).redis_url
        url = secret.get_secret_value() if secret else None
    if not url:
        print("kpi wallboard: no Redis to read: pass --redis-url or set KPI_REDIS_URL (or redis_url in "
              "the settings file); the workers need the same setting to write the snapshot", file=sys.stderr)
        return 2
    import logging

    from .wallboard import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(url, host=args.host, port=args.port, stale_after=args.stale_after)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kpi", description="Real-time contact-center KPI processor")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="compute rollups from a JSON-lines event file, no broker")
    r.add_argument("--input", required=True)
    r.add_argument("--output", required=True)
    r.add_argument("--config", help="YAML settings file (queues, intervals, lateness)")
    r.add_argument("--dead-letters", help="write rejected events here (JSON lines)")
    r.add_argument("--no-flush", action="store_true",
                   help="at end of input publish only intervals the watermark closed (as a live worker would)")
    r.add_argument("--not-after", metavar="TIME|none",
                   help="dead-letter events later than this ISO 8601 time as from_the_future (UTC when no offset), "
                        "or 'none' for no bound; default: the wall clock at start + max_future_seconds, as a worker "
                        "does (use 'none' or a later time for a file whose times lie in the future)")
    r.set_defaults(fn=cmd_replay)

    w = sub.add_parser("worker", help="run one Faust worker")
    w.add_argument("--config")
    w.add_argument("--loglevel", default="warning")
    w.set_defaults(fn=cmd_worker)

    sm = sub.add_parser("simulate", help="seeded contact-center simulation to Kafka or a file")
    sm.add_argument("--config")
    sm.add_argument("--output", help="write JSON lines here instead of producing to Kafka")
    sm.add_argument("--bootstrap")
    sm.add_argument("--topic")
    sm.add_argument("--seed", type=int, default=7)
    sm.add_argument("--hours", type=float, default=1.0)
    sm.add_argument("--start", help="event time of the first event (RFC 3339); default now")
    sm.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible")
    sm.add_argument("--duplicates", type=float, default=0.0, help="probability of re-sending an event")
    sm.add_argument("--model", help="simulation model YAML (see deploy/config/simulation.example.yaml); "
                                    "default: the built-in sales/support center")
    sm.add_argument("--truth", help="also write the simulator's own queue_interval figures here (JSON lines)")
    sm.add_argument("--disorder", type=float, default=0.0,
                    help="deliver events out of order by up to this many seconds (keep it under the lateness)")
    sm.set_defaults(fn=cmd_simulate)

    pr = sub.add_parser("produce", help="send a JSON-lines event file to the input topic")
    pr.add_argument("--input", required=True)
    pr.add_argument("--config")
    pr.add_argument("--bootstrap")
    pr.add_argument("--topic")
    pr.add_argument("--speed", type=float, default=0.0)
    pr.set_defaults(fn=cmd_produce)

    rn = sub.add_parser("run", help="main job: broker + worker + simulated feed")
    rn.add_argument("--config")
    rn.add_argument("--bootstrap", help="use this Kafka instead of the embedded Tansu broker")
    rn.add_argument("--port", type=int, default=6066)
    rn.add_argument("--speed", type=float, default=1.0)
    rn.add_argument("--hours", type=float, default=8.0)
    rn.set_defaults(fn=cmd_run)

    wb = sub.add_parser("wallboard", help="serve the live wallboard page (reads the Redis snapshot)")
    wb.add_argument("--config")
    wb.add_argument("--redis-url", help="redis://host:port/db (default: the redis_url setting, KPI_REDIS_URL)")
    wb.add_argument("--host", default="127.0.0.1")
    wb.add_argument("--port", type=int, default=8080)
    wb.add_argument("--stale-after", type=float, default=10.0,
                    help="seconds without confirmation before the page shows a queue as stale")
    wb.set_defaults(fn=cmd_wallboard)

    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
