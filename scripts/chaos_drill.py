"""Chaos drill: `kpi worker`s killed and restarted at random on a real Apache Kafka, then compared with replay.

One run: a seeded simulated feed (with duplicates and disorder, plus malformed messages) is
produced in chunks while N workers (2-3, one consumer group) are SIGKILLed at random moments:
one or two at once, during the catch-up of a backlog and live, and right after a restart (during
their recovery); each comes back on the same data folder or an empty one; the broker is
restarted once. At the end all workers run until the rollups settle, and the run passes when
- the latest version of every rollup record of every kind equals `kpi replay` of the same log,
- the dead letters equal replay's (as a set with at_least_once, which may send one twice; as a
  list with exactly_once, read committed),
- no (record, version) was published twice with different contents.

    python scripts/chaos_drill.py --runs 10 --guarantee both --results drill-results.jsonl

Prints each run's seed and progress; appends one JSON line per run to --results; keeps the
workers' logs of a failed run under --work (printed).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processor.config import load_settings  # noqa: E402
from processor.core.events import parse_ts_ms  # noqa: E402
from processor.replay import replay_lines  # noqa: E402
from processor.services import ApacheKafka, KpiWorker  # noqa: E402
from processor.services.rollups import latest, read_all, record_key  # noqa: E402
from processor.simulator import Simulation, delivered_events  # noqa: E402

BAD = [b"chaos: not json", b'{"event_id": "bad-1", "type": "contact.teleported", "ts": "2026-03-02T10:00:00Z"}']


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# A recontact window of 29 minutes, so that resolution_day records (due a window after their
# contacts) are published within a short feed that crosses midnight.
CONFIG = "recontact_window_days: 0.02\n"


def make_feed(seed: int, minutes: float, config: Path) -> dict:
    """A simulated stretch of `minutes` across midnight, as delivered (duplicates, disorder), and replay's result."""
    start = datetime.fromisoformat("2026-03-02T23:20:00+00:00").timestamp()
    sim = Simulation(seed=seed, start=start, duration_seconds=int(minutes * 60),
                     duplicate_probability=0.02, disorder_seconds=20)
    events = delivered_events(sim)
    lines = [json.dumps(ev).encode() for ev in events]
    rng = random.Random(seed)
    for bad in BAD:  # malformed messages somewhere in the log
        lines.insert(rng.randrange(len(lines)), bad)
    out, dead = io.StringIO(), io.StringIO()
    replay_lines(lines, load_settings(config).engine(), out, dead, flush=False)
    return {"events": events, "lines": lines, "rollups": [json.loads(x) for x in out.getvalue().splitlines()],
            "dead": [json.loads(x) for x in dead.getvalue().splitlines()],
            "last_ts": max(parse_ts_ms(ev["ts"]) for ev in events)}


def _key(line: bytes) -> bytes:
    try:
        ev = json.loads(line)
        return (ev.get("contact_id") or ev.get("agent_id") or ev.get("customer_id") or "").encode()
    except (ValueError, AttributeError):
        return b"raw"


async def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True, request_timeout_ms=60000)
    await producer.start()
    try:
        for line in lines:
            await producer.send(topic, line, key=_key(line))
        await producer.flush()
    finally:
        await producer.stop()


def produce(bootstrap: str, topic: str, lines: list[bytes], attempts: int = 5) -> None:
    """`lines` on `topic`; a chunk that could not be written whole (broker restarting) is not retried
    partly: a producer error ends the run as an error, never as a silent difference."""
    asyncio.run(_produce(bootstrap, topic, lines))


async def _read_all(bootstrap: str, topic: str, isolation_level: str, quiet_ms: int = 2500) -> list[bytes]:
    return [value for _, value in await read_all(bootstrap, topic, quiet_ms, isolation_level)]


def _plain(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "version"}


SETTINGS_FIELDS = {"version", "window_days", "horizon_days"}  # not counts: what the record is about


def _counts_nothing(value) -> bool:
    """True when a record's every count and figure is 0 or null (strings name things, not counts)."""
    if isinstance(value, dict):
        return all(_counts_nothing(v) for k, v in value.items() if k not in SETTINGS_FIELDS)
    if isinstance(value, (list, tuple)):
        return all(_counts_nothing(v) for v in value)
    if value is None or isinstance(value, str):
        return True
    return not value  # a number (or a flag): 0, 0.0, False


def withdrawn(record: dict) -> bool:
    """A correction that takes back a published record: a later version counting nothing.

    Streaming closes an interval when its watermark passes; a contact counted then under a queue or
    channel it later leaves (queue `none`, channel `unknown` before its queue is known) was published,
    and the move is published as a new version counting nothing there. That is the right output for
    a consumer that read the first version; replay, which sees the whole log first, publishes no
    record at all for that key. Seen in seeds 11003, 24310 and 27017 (exactly_once): resolution_day of
    queue `none`, queue_interval of channel `unknown`, each a version 2 with every count 0."""
    return record["version"] > 1 and _counts_nothing(record)


def verdict(streamed: list[dict], dead: list[dict], feed: dict, exactly_once: bool) -> tuple[bool, dict]:
    """(passed, details) of the three checks. A record replay does not publish is accepted when its
    latest version withdraws it (`withdrawn`); such records are counted in the details."""
    got, want = latest(streamed), latest(feed["rollups"])
    withdrawals = sorted(str(k) for k, r in got.items() if k not in want and withdrawn(r))
    got_p = {k: _plain(r) for k, r in got.items() if k in want or not withdrawn(r)}
    want_p = {k: _plain(r) for k, r in want.items()}
    wrong = sorted(str(k) for k in set(got_p) | set(want_p) if got_p.get(k) != want_p.get(k))
    seen: dict[tuple, str] = {}
    conflicts = 0
    for r in streamed:
        k = (record_key(r), r["version"])
        body = json.dumps(r, sort_keys=True)
        if seen.setdefault(k, body) != body:
            conflicts += 1
    canon = sorted(json.dumps(d, sort_keys=True) for d in dead)
    want_dead = sorted(json.dumps(d, sort_keys=True) for d in feed["dead"])
    dead_ok = canon == want_dead if exactly_once else sorted(set(canon)) == sorted(set(want_dead))
    details = {"records": len(want_p), "wrong_records": len(wrong), "wrong_examples": wrong[:5],
               "version_conflicts": conflicts, "dead_letters": len(dead), "replay_dead_letters": len(feed["dead"]),
               "dead_letters_equal": dead_ok, "published": len(streamed),
               "withdrawn_records": len(withdrawals), "withdrawn_examples": withdrawals[:5]}
    return (not wrong and not conflicts and dead_ok), details


class Drill:
    """One seeded run on `broker` (restarted once)."""

    def __init__(self, broker: ApacheKafka, seed: int, guarantee: str, work: Path, *, workers: int | None = None,
                 minutes: float = 70, chunks: int = 6, kills: int | None = None, settle_s: float = 150) -> None:
        self.broker, self.seed, self.guarantee, self.work = broker, seed, guarantee, work
        self.rng = random.Random(seed)
        self.n = workers or self.rng.choice([2, 3])
        self.minutes, self.chunks, self.settle_s = minutes, chunks, settle_s
        self.kills = kills if kills is not None else self.rng.randint(3, 5)
        suffix = uuid.uuid4().hex[:6]
        self.env = {"KPI_KAFKA__INPUT_TOPIC": f"ev-{suffix}", "KPI_KAFKA__ROLLUP_TOPIC": f"ru-{suffix}",
                    "KPI_KAFKA__DEAD_LETTER_TOPIC": f"dl-{suffix}", "KPI_KAFKA__FACTS_TOPIC": f"fa-{suffix}",
                    "KPI_APP_ID": f"drill-{suffix}", "KPI_KAFKA__PROCESSING_GUARANTEE": guarantee,
                    "KPI_KAFKA__SESSION_TIMEOUT_SECONDS": "6"}
        self.workers: list[KpiWorker | None] = [None] * self.n
        self.folders = [0] * self.n
        self.starts = 0
        self.events: list[str] = []

    def _start(self, i: int, fresh: bool) -> None:
        if fresh:
            self.folders[i] += 1
        folder = self.work / f"w{i}-{self.folders[i]}"
        self.starts += 1  # each process its own log (a restart on the same data folder keeps the old ones)
        w = KpiWorker(self.broker.bootstrap, work_dir=folder / f"start-{self.starts}", config=self.config,
                      env=self.env | {"KPI_DATA_DIR": str(folder / "data")})
        w.start(timeout=120)
        self.workers[i] = w

    def _kill(self, idx: list[int], when: str) -> None:
        for i in idx:
            w = self.workers[i]
            if w is not None and w.running:
                w.kill()
        self.events.append(f"kill {idx} {when}")
        say(f"  SIGKILL worker(s) {idx} ({when})")

    def _restart(self, idx: list[int]) -> None:
        for i in idx:
            fresh = self.rng.random() < 0.4
            self._start(i, fresh)
            self.events.append(f"start {i} {'empty' if fresh else 'same'} folder")
            say(f"  worker {i} restarted on {'an empty' if fresh else 'its'} data folder")

    def chaos_step(self, when: str) -> None:
        for i, w in enumerate(self.workers):
            if w is not None and not w.running:  # exited by itself (a fenced producer stops a worker)
                self.events.append(f"worker {i} had exited")
                self._restart([i])
        kind = self.rng.random()
        idx = sorted(self.rng.sample(range(self.n), 2)) if kind < 0.3 else [self.rng.randrange(self.n)]
        self._kill(idx, when)
        time.sleep(self.rng.uniform(0, 2))
        self._restart(idx)
        if self.rng.random() < 0.35:  # again, during the recovery that restart began
            time.sleep(self.rng.uniform(0.5, 4))
            self._kill(idx[:1], "during recovery")
            time.sleep(self.rng.uniform(0, 1))
            self._restart(idx[:1])

    def run(self) -> dict:
        t0 = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        self.config = self.work / "drill.yaml"
        self.config.write_text(CONFIG)
        feed = make_feed(self.seed, self.minutes, self.config)
        lines, topic = feed["lines"], self.env["KPI_KAFKA__INPUT_TOPIC"]
        kinds = sorted({r["kind"] for r in feed["rollups"]})
        say(f"seed {self.seed} {self.guarantee}: {self.n} workers, {len(lines)} messages, {self.kills} kill rounds, "
            f"replay: {len(latest(feed['rollups']))} records ({', '.join(kinds)}), {len(feed['dead'])} dead letters")
        from processor.config import Settings
        from processor.topics import ensure_topics
        ensure_topics(Settings(kafka={"bootstrap": self.broker.bootstrap, **{
            k.removeprefix("KPI_KAFKA__").lower(): v for k, v in self.env.items() if k.startswith("KPI_KAFKA__")}}))
        cut = [round(len(lines) * i / self.chunks) for i in range(self.chunks + 1)]
        backlog = self.chunks // 2
        produce(self.broker.bootstrap, topic, lines[:cut[backlog]])  # a backlog: the first kills come during catch-up
        for i in range(self.n):
            self._start(i, fresh=True)
        rounds = sorted(self.rng.sample(range(backlog, self.chunks), k=min(self.kills, self.chunks - backlog))
                        + [self.rng.randrange(backlog, self.chunks) for _ in range(max(0, self.kills - (self.chunks - backlog)))])
        broker_at = self.rng.randrange(backlog, self.chunks)
        for c in range(backlog, self.chunks):
            when = "catch-up" if c == backlog else "live"
            for _ in range(rounds.count(c)):
                time.sleep(self.rng.uniform(0, 1.5))
                self.chaos_step(when)
            if c == broker_at:
                say("  broker restart")
                self.events.append("broker restart")
                self.broker.stop()
                time.sleep(self.rng.uniform(1, 4))
                self.broker.start(timeout=120)
            produce(self.broker.bootstrap, topic, lines[cut[c]:cut[c + 1]])
            say(f"  produced chunk {c + 1}/{self.chunks}")
        for i, w in enumerate(self.workers):
            if w is None or not w.running:
                self._restart([i])
        say("  chaos over: waiting for the rollups to settle")
        ok, details = self._settle(feed)
        result = {"seed": self.seed, "guarantee": self.guarantee, "workers": self.n, "passed": ok,
                  "seconds": round(time.monotonic() - t0, 1), "events": self.events, **details,
                  "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for w in self.workers:
            if w is not None:
                w.stop()
        return result

    def _settle(self, feed: dict) -> tuple[bool, dict]:
        exactly_once = self.guarantee == "exactly_once"
        isolation = "read_committed" if exactly_once else "read_uncommitted"
        deadline = time.monotonic() + self.settle_s
        details: dict = {}
        while True:
            streamed = [json.loads(v) for v in asyncio.run(
                _read_all(self.broker.bootstrap, self.env["KPI_KAFKA__ROLLUP_TOPIC"], isolation))]
            dead = [json.loads(v) for v in asyncio.run(
                _read_all(self.broker.bootstrap, self.env["KPI_KAFKA__DEAD_LETTER_TOPIC"], isolation, 1000))]
            ok, details = verdict(streamed, dead, feed, exactly_once)
            if ok or time.monotonic() > deadline or details["version_conflicts"]:
                return ok, details
            say(f"  not settled yet: {details['wrong_records']} of {details['records']} records differ, "
                f"dead letters {details['dead_letters']}/{details['replay_dead_letters']}")
            for i, w in enumerate(self.workers):
                if w is not None and not w.running:
                    say(f"  worker {i} exited: restarting it")
                    self._restart([i])
            time.sleep(5)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, help="first seed (default: random, printed)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--guarantee", choices=["at_least_once", "exactly_once", "both"], default="both",
                    help="both: alternate, starting with at_least_once")
    ap.add_argument("--workers", type=int, choices=[2, 3], help="default: 2 or 3, by seed")
    ap.add_argument("--minutes", type=float, default=70, help="simulated minutes of feed per run")
    ap.add_argument("--results", default="drill-results.jsonl", help="one JSON line per run is appended here")
    ap.add_argument("--commit", default="", help="recorded with each result (the code under test)")
    ap.add_argument("--work", help="folder for the broker and workers (default: a new temporary one)")
    args = ap.parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the drill's own clients retry through the broker restart
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    work = Path(args.work or tempfile.mkdtemp(prefix="chaos-drill-"))
    work.mkdir(parents=True, exist_ok=True)
    results = Path(args.results).resolve()
    say(f"chaos drill: first seed {seed}, {args.runs} run(s), guarantee {args.guarantee}; work folder {work}; "
        f"results appended to {results}")
    broker = ApacheKafka(work / "kafka")
    broker.start(timeout=180)
    passed = failed = 0
    try:
        for n in range(args.runs):
            s = seed + n
            guarantee = args.guarantee if args.guarantee != "both" else ("at_least_once", "exactly_once")[n % 2]
            run_dir = work / f"run-{s}-{guarantee}"
            say(f"run {n + 1}/{args.runs}: seed {s}, {guarantee}")
            try:
                result = Drill(broker, s, guarantee, run_dir, workers=args.workers, minutes=args.minutes).run()
            except Exception as exc:  # an error of the drill's own (a worker that would not start): reported as such
                result = {"seed": s, "guarantee": guarantee, "passed": False, "error": repr(exc),
                          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                if not broker.running:
                    broker.start(timeout=180)
            result["commit"] = args.commit
            with results.open("a") as fh:
                fh.write(json.dumps(result) + "\n")
            if result["passed"]:
                passed += 1
                shutil.rmtree(run_dir, ignore_errors=True)
                say(f"run {n + 1}: seed {s} {guarantee} PASSED in {result['seconds']} s "
                    f"({result['records']} records, {result['published']} published)")
            else:
                failed += 1
                say(f"run {n + 1}: seed {s} {guarantee} FAILED: "
                    f"{ {k: v for k, v in result.items() if k not in ('events',)} }; logs kept in {run_dir}")
    finally:
        broker.stop()
    say(f"done: {passed} passed, {failed} failed; results in {results}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
