"""`kpi`: the command line. Every long-running command prints progress and where its output went."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from .errors import CommandError, check_known_queues, check_port_free, readable_file, writable_file


def _settings(args):
    from .config import ConfigError, load_settings  # pydantic: ~0.15 s to import, not needed by every command

    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _reach_broker(settings) -> None:
    """Wait (with backoff) for the broker, then create the topics; a CommandError when either fails."""
    from .errors import wait_for_broker
    from .topics import ensure_topics

    wait_for_broker(settings.kafka.bootstrap, settings.kafka.connect_wait_seconds, _say)
    try:
        ensure_topics(settings, timeout=max(10.0, settings.kafka.connect_wait_seconds))
    except Exception as exc:  # kafka-python's errors: TLS, SASL, a port that is not Kafka
        raise CommandError(f"the broker at {settings.kafka.bootstrap} accepts connections but the topics cannot "
                           f"be listed or created ({type(exc).__name__}: {exc}); check the kafka.* settings", 1) from None


def cmd_replay(args) -> int:
    from .replay import run_replay

    from .replay import not_after_bound

    s = _settings(args)
    readable_file(args.input, "--input")
    writable_file(args.output, "--output")
    if args.dead_letters:
        writable_file(args.dead_letters, "--dead-letters")
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
    check_port_free(s.web_host, s.web_port, "the worker's /metrics", "KPI_WEB_PORT")
    _reach_broker(s)
    from faust.worker import Worker

    from .worker.app import create_app
    from .core import describe

    app, _ = create_app(s)
    print(f"worker {s.app_id}: consuming {s.kafka.input_topic} on {s.kafka.bootstrap}; "
          f"gauges at http://{s.web_host}:{s.web_port}/metrics; rollups to {s.kafka.rollup_topic}; "
          f"dead letters to {s.kafka.dead_letter_topic}; {describe()}", file=sys.stderr, flush=True)
    worker = Worker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    from .crash_exit import exit_after_crash

    exit_after_crash(worker)  # a crash whose stop hangs still ends the process (processor/crash_exit.py)
    worker.execute_from_commandline()
    return 0


def cmd_simulate(args) -> int:
    from .simulator import DEFAULT_MODEL, ModelError, Simulation, delivered_events, dumps, load_model, with_profile

    for name in ("duplicates", "disorder", "hours", "speed"):
        if getattr(args, name) < 0 or (name == "duplicates" and args.duplicates > 1):
            print(f"--{name}: out of range ({getattr(args, name)})", file=sys.stderr)
            return 2
    try:
        model = with_profile(load_model(args.model) if args.model else DEFAULT_MODEL, args.profile)
    except ModelError as exc:
        print(f"invalid simulation model {args.model}: {exc}", file=sys.stderr)
        return 2
    for option in ("output", "truth"):
        if getattr(args, option):
            writable_file(getattr(args, option), f"--{option}")
    settings = _settings(args) if (args.truth or not args.output or args.config) else None
    if args.config:  # a settings file given for this simulation: its queues are the simulated ones
        check_known_queues(settings.queues, (q.queue_id for q in model.queues), f"--config {args.config}")
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
    events = []
    with open(readable_file(args.input, "--input"), "rb") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except ValueError as exc:
                    raise CommandError(f"--input {args.input}, line {n}: not JSON ({exc}); one event per line") from None
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
    from .topics import aiokafka_security, event_key

    if bootstrap:
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap})})
    bootstrap, topic = settings.kafka.bootstrap, topic or settings.kafka.input_topic
    if topic == settings.kafka.input_topic:
        _reach_broker(settings)
    else:
        from .errors import wait_for_broker
        wait_for_broker(bootstrap, settings.kafka.connect_wait_seconds, _say)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all", **aiokafka_security(settings))
    try:
        await producer.start()
    except Exception as exc:  # aiokafka's KafkaConnectionError, TLS or SASL errors
        await producer.stop()
        raise CommandError(f"cannot connect a producer to {bootstrap} ({type(exc).__name__}: {exc})", 1) from None
    started = time.monotonic()
    first_ts = parse_ts_ms(events[0]["ts"]) / 1000 if events else 0
    try:
        for n, ev in enumerate(events, 1):
            if speed > 0:
                due = (parse_ts_ms(ev["ts"]) / 1000 - first_ts) / speed
                delay = due - (time.monotonic() - started)
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(topic, json.dumps(ev, separators=(",", ":")).encode(), key=event_key(ev))
            if n % 1000 == 0 or n == len(events):
                print(f"\r  sent {n:,}/{len(events):,} events to {topic}", end="", file=sys.stderr, flush=True)
        await producer.flush()
    finally:
        await producer.stop()
    print(f"\nproduced {len(events):,} events to {topic} on {bootstrap}", file=sys.stderr)
    return 0


def cmd_run(args) -> int:
    """The main job: the whole floor on this machine (processor/floor.py)."""
    from .floor import run_floor

    return run_floor(args, _settings(args))


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

    from .errors import wait_for_redis
    from .wallboard import run

    check_port_free(args.host, args.port, "the wallboard", "--port")
    wait_for_redis(url, args.redis_wait)
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
    sm.add_argument("--profile", choices=("realistic", "uniform"), default="realistic",
                    help="realistic (default): the model's customers and feed (built-in: half the contacts "
                         "unidentified under id 0, Zipf customers, a busy account, clock skew, missing optional "
                         "fields); uniform: a new customer per contact, every field, one clock (docs/simulator.md)")
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

    rn = sub.add_parser("run", help="main job: broker, worker, Redis, wallboard and a simulated feed "
                                    "(docs/operations.md)")
    rn.add_argument("--config", help="YAML settings file; its queues must be queues of the simulated center")
    rn.add_argument("--bootstrap", help="use this Kafka instead of the embedded Tansu broker")
    rn.add_argument("--port", type=int, default=6066, help="the worker's /metrics port (0: any free port)")
    rn.add_argument("--wallboard-port", type=int, default=8080, help="the wallboard's port (0: any free port)")
    rn.add_argument("--redis-server", help="the redis-server program (default: Debian's /usr/bin/redis-server, "
                                           "else the one on PATH); without one: gauges only, no wallboard")
    rn.add_argument("--backlog", type=float, default=2.0,
                    help="hours of the simulated day before now sent at once at start, so that every window "
                         "has figures within a minute (0: start empty, now)")
    rn.add_argument("--hours", type=float, default=8.0, help="hours of live feed after now")
    rn.add_argument("--speed", type=float, default=1.0, help="pace of the live feed: 1 = real time")
    rn.add_argument("--seed", type=int, default=7)
    rn.add_argument("--model", help="simulation model YAML (default: the built-in sales/support center)")
    rn.set_defaults(fn=cmd_run)

    wb = sub.add_parser("wallboard", help="serve the live wallboard page (reads the Redis snapshot)")
    wb.add_argument("--config")
    wb.add_argument("--redis-url", help="redis://host:port/db (default: the redis_url setting, KPI_REDIS_URL)")
    wb.add_argument("--host", default="127.0.0.1")
    wb.add_argument("--port", type=int, default=8080)
    wb.add_argument("--stale-after", type=float, default=10.0,
                    help="seconds without confirmation before the page shows a queue as stale")
    wb.add_argument("--redis-wait", type=float, default=10.0,
                    help="seconds to retry an unreachable Redis at start before giving up (later outages are shown "
                         "on the page and retried for ever)")
    wb.set_defaults(fn=cmd_wallboard)

    from .ingest.shell import register as register_ingest  # `kpi ingest asterisk|csv` (processor/ingest)
    register_ingest(sub)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except CommandError as exc:
        print(f"kpi {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file or socket that failed after the checks (disk full, a folder removed...)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"kpi {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
