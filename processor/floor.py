"""`kpi run`: the whole floor on one machine, with figures on the wallboard within a minute at any hour.

It starts an embedded Tansu broker (unless --bootstrap), redis-server on a free port with its data in
a temporary folder (gauges only, said plainly, when redis-server is missing), one worker writing the
live snapshot to it, the wallboard, and the simulated feed. The feed first sends the last
--backlog hours of the simulated day at once, so that "today" and the 5/15/60 minute windows are
already filled when the worker has caught up, then goes on in real time from now. The terminal says
what happens (broker up, worker joined, backlog replayed, live) and keeps a status line; Ctrl-C or
SIGTERM stops every child process before the command returns.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .errors import CommandError, check_known_queues, check_port_free, wait_for_broker

HOST = "127.0.0.1"
STATUS_EVERY_TTY = 1.0    # seconds between two renderings of the status line on a terminal
STATUS_EVERY_LOG = 5.0    # ... and between two status lines when stderr is a file or a pipe


class Terminal:
    """Progress lines, and one status line kept at the bottom of a terminal (a line every few s elsewhere)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self._status_shown = False
        self._last_status = 0.0

    def say(self, text: str) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False
        self.stream.write(f"[{time.monotonic() - self.started:5.1f}s] {text}\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        now = time.monotonic()
        if self.tty:
            width = shutil.get_terminal_size((120, 24)).columns
            self.stream.write("\r\x1b[K" + text[:max(20, width - 1)])
            self._status_shown = True
        elif now - self._last_status >= STATUS_EVERY_LOG:
            self.stream.write(f"[{now - self.started:5.1f}s] status: {text}\n")
            self._last_status = now
        else:
            return
        self.stream.flush()


@dataclass
class Progress:
    sent: int = 0
    backlog: int = 0          # events of the backlog (sent at once)
    processed: int = 0        # kpi_events_processed_total
    handled: int = 0          # processed + duplicates + dead letters: every input message the worker is done with
    lag: int | None = None    # messages behind on the input topic
    partitions: int = 0       # input partitions the worker owns
    queues: int = 0           # queue x channel rows with live figures
    phase: str = "starting"


def _model(args):
    from .simulator import DEFAULT_MODEL, ModelError, load_model

    if not args.model:
        return DEFAULT_MODEL
    try:
        return load_model(args.model)
    except ModelError as exc:
        raise CommandError(f"--model {args.model}: {exc}") from None


def _redis_binary(option: str | None) -> str | None:
    from .services.redis import DEFAULT_REDIS_SERVER

    if option:
        return option if Path(option).is_file() else None
    if Path(DEFAULT_REDIS_SERVER).is_file():
        return DEFAULT_REDIS_SERVER
    return shutil.which("redis-server")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Floor:
    def __init__(self, args, settings, term: Terminal) -> None:
        from .services import free_port

        self.args, self.term = args, term
        for name, low in (("hours", 0.0), ("backlog", 0.0), ("speed", 0.0)):
            if getattr(args, name) < low or (name == "hours" and args.hours == 0):
                raise CommandError(f"--{name} {getattr(args, name)}: out of range (must be "
                                   f"{'more than' if name == 'hours' else 'at least'} 0)")
        self.model = _model(args)
        check_known_queues(settings.queues, (q.queue_id for q in self.model.queues),
                           f"--config {args.config}" if args.config else "the settings (KPI_CONFIG)")
        self.metrics_port = args.port or free_port()
        self.board_port = args.wallboard_port or free_port()
        check_port_free(HOST, self.metrics_port, "the worker's /metrics", "--port")
        self.redis_bin = _redis_binary(args.redis_server)
        if self.redis_bin:
            check_port_free(HOST, self.board_port, "the wallboard", "--wallboard-port")
        self.settings = settings
        self.logs = Path(tempfile.gettempdir())  # until start() makes its own folder
        self.broker = self.redis = self.worker = self.board = None
        self.progress = Progress()
        self.failure: str | None = None
        self.signalled: str | None = None

    # -- start -----------------------------------------------------------------------------------
    def start(self) -> None:
        from .services import KpiWorker, ManagedProcess, RedisServer, TansuBroker, wait_for_port
        from .topics import ensure_topics

        say = self.term.say
        self.logs = Path(tempfile.mkdtemp(prefix="kpi-run-"))
        bootstrap = self.args.bootstrap
        if bootstrap:
            say(f"broker: Kafka at {bootstrap}")
        else:
            self.broker = TansuBroker(work_dir=self.logs / "tansu")  # kept before start: a Ctrl-C then still stops it
            self.broker.start()
            bootstrap = self.broker.bootstrap
            say(f"broker up: embedded Tansu at {bootstrap} (in memory)")
        self.settings = self.settings.model_copy(
            update={"kafka": self.settings.kafka.model_copy(update={"bootstrap": bootstrap})})
        ensure_topics(self.settings, timeout=max(10.0, self.settings.kafka.connect_wait_seconds))

        env = {}
        if self.redis_bin:
            self.redis = RedisServer(binary=self.redis_bin)
            self.redis.start()
            env["KPI_REDIS_URL"] = self.redis.url
            say(f"Redis up: redis-server at {self.redis.address} (data in {self.redis.work_dir}, removed at the end)")
        else:
            what = self.args.redis_server or "redis-server"
            say(f"no Redis: {what} not found, so no wallboard (gauges only); install it with "
                f"`apt-get install redis-server` (scripts/setup.sh does)")
        self.worker = KpiWorker(bootstrap, port=self.metrics_port, work_dir=self.logs / "worker",
                                config=self.args.config, env=env)
        if self.redis is not None:  # started first: it is up while the worker is still importing Faust
            self.board = ManagedProcess(
                [sys.executable, "-m", "processor.cli", "wallboard", "--host", HOST, "--port", str(self.board_port),
                 "--redis-url", self.redis.url], self.logs / "wallboard.log", name="kpi wallboard").start()
        self.worker.start(timeout=120)
        say(f"worker started (pid {self.worker.pid}, log {self.worker.log_path}); waiting for it to join")
        if self.board is not None:
            wait_for_port(HOST, self.board_port, 60, process=self.board)
            say(f"wallboard  http://{HOST}:{self.board_port}/")
        say(f"gauges     {self.worker.url}/metrics")

    # -- running ---------------------------------------------------------------------------------
    async def live(self) -> None:
        loop = asyncio.get_running_loop()
        stop = self._stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        tasks = [loop.create_task(self._feed()), loop.create_task(self._watch(stop))]
        stopper = loop.create_task(stop.wait())
        try:
            await stopper
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self.signalled = signal.Signals(sig).name
        self._stop.set()

    def _events(self) -> tuple[list[tuple[float, dict]], float]:
        from .simulator import Simulation

        now = time.time()
        start = float(int(now - self.args.backlog * 3600))
        sim = Simulation(self.model, seed=self.args.seed, start=start,
                         duration_seconds=now - start + self.args.hours * 3600)
        return list(sim.events()), now

    async def _feed(self) -> None:
        try:
            await self._send()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker went away, or refused the producer
            self.failure = f"the feed stopped: {type(exc).__name__}: {exc}"
            self._stop.set()

    async def _send(self) -> None:
        from aiokafka import AIOKafkaProducer

        from .topics import aiokafka_security, event_key

        events, now = self._events()
        backlog = sum(1 for t, _ in events if t <= now)
        p = self.progress
        p.backlog = backlog
        topic = self.settings.kafka.input_topic
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka.bootstrap, linger_ms=5, acks="all",
                                    **aiokafka_security(self.settings))
        await producer.start()
        try:
            started = time.monotonic()
            for n, (t, ev) in enumerate(events):
                if n == backlog:
                    await producer.flush()
                    if backlog:
                        first = time.strftime("%H:%M", time.gmtime(events[0][0]))
                        self.term.say(f"backlog sent: {backlog:,} events of the last {self.args.backlog:g} h of the "
                                      f"simulated day ({first}-{time.strftime('%H:%M', time.gmtime(now))} UTC) "
                                      f"in {time.monotonic() - started:.1f} s")
                    self.term.say(f"feed: from now on in real time{'' if self.args.speed == 1 else f' x{self.args.speed:g}'}"
                                  f" for {self.args.hours:g} h")
                if n >= backlog and self.args.speed > 0:
                    delay = (t - now) / self.args.speed - (time.monotonic() - started)
                    if delay > 0:
                        await asyncio.sleep(delay)
                await producer.send(topic, json.dumps(ev, separators=(",", ":")).encode(), key=event_key(ev))
                p.sent = n + 1
                if n % 500 == 499:
                    await asyncio.sleep(0)  # let the status line and the signals through during the backlog
            await producer.flush()
            self.term.say(f"feed finished ({p.sent:,} events); the worker and the wallboard go on until Ctrl-C")
        finally:
            await producer.stop()

    def _scrape(self) -> None:
        samples = self.worker.scrape()
        topic = self.settings.kafka.input_topic
        p = self.progress
        p.processed = int(samples.get("kpi_events_processed_total", 0))
        p.handled = p.processed + int(samples.get("kpi_events_duplicate_total", 0)) + int(sum(
            v for k, v in samples.items() if k.startswith("kpi_events_dead_lettered_total")))
        lags = [v for k, v in samples.items() if k.startswith("kpi_consumer_lag_messages{") and f'topic="{topic}"' in k]
        p.lag = int(sum(lags)) if lags else None
        p.partitions = int(samples.get(f'kpi_assigned_partitions{{topic="{topic}"}}', 0))
        p.queues = sum(1 for k in samples if k.startswith("contact_queue_waiting{"))

    async def _watch(self, stop: asyncio.Event) -> None:
        """Scrape the worker every second: milestones, the status line, and any child that died."""
        loop = asyncio.get_running_loop()
        p, say = self.progress, self.term.say
        while not stop.is_set():
            for name, proc in (("broker", self.broker), ("Redis", self.redis), ("worker", self.worker),
                               ("wallboard", self.board)):
                if proc is not None and not proc.running:
                    self.failure = f"the {name} stopped unexpectedly; its log: {proc.log_path}"
                    stop.set()
                    return
            try:
                await loop.run_in_executor(None, self._scrape)
            except OSError:
                pass
            if p.phase == "starting" and p.partitions:
                p.phase = "joined"
                say(f"worker joined: it owns {p.partitions} partitions of {self.settings.kafka.input_topic}")
            if p.phase == "joined" and p.sent >= p.backlog and p.handled >= p.backlog and p.lag == 0:
                p.phase = "live"
                say(f"backlog replayed: {p.backlog:,} events processed; {p.queues} queues have figures")
                say("live: new events as they happen" + ("" if self.board is None else
                                                          f"; open http://{HOST}:{self.board_port}/"))
            self.term.status(self.status_line())
            await asyncio.sleep(STATUS_EVERY_TTY)

    def status_line(self) -> str:
        p = self.progress
        lag = "?" if p.lag is None else f"{p.lag:,}"
        urls = (f"http://{HOST}:{self.board_port}/ · " if self.board is not None else "") + f"{self.worker.url}/metrics"
        return (f"{p.phase} · sent {p.sent:,} · processed {p.processed:,} · lag {lag} · queues {p.queues} · {urls}")

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        for part in (self.board, self.worker, self.redis, self.broker):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # keep stopping the others
                    self.term.say(f"could not stop {part!r}: {exc}")


def run_floor(args, settings) -> int:
    term = Terminal()
    floor = Floor(args, settings, term)  # checks first: nothing is started on bad input
    if args.bootstrap:
        wait_for_broker(args.bootstrap, settings.kafka.connect_wait_seconds, term.say,
                        hint="Start it, or leave out --bootstrap to use the embedded broker; "
                             "KPI_KAFKA__CONNECT_WAIT_SECONDS sets how long to retry.")
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        term.say("kpi run: starting the floor (Ctrl-C stops it)")
        floor.start()
        asyncio.run(floor.live())
    except KeyboardInterrupt:
        floor.signalled = floor.signalled or "SIGINT"
    except Exception as exc:  # a part that did not start: say which, keep the logs
        from .services import ServiceError

        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        floor.failure = first if isinstance(exc, (ServiceError, CommandError)) else f"{type(exc).__name__}: {first}"
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        term.say("stopping: wallboard, worker, Redis, broker ...")
        floor.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if floor.failure:
        term.say(f"kpi run: {floor.failure} (logs in {floor.logs})")
        return 1
    term.say(f"stopped{f' ({floor.signalled})' if floor.signalled else ''}; every process it started has ended; logs in {floor.logs}")
    return 0
