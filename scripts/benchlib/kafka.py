"""The broker side of a run: Apache Kafka started in the run folder, bulk production, a bare
consumer's baseline, the run's topic names and worker environment, and the cleanup at the end."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from .report import progress, progress_done


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


def run_names(kind: str = "bench") -> tuple[str, dict[str, str], str]:
    """A run's unique suffix, its topics (settings names -> topic names) and its app id."""
    suffix = uuid.uuid4().hex[:8]
    topics = {"input_topic": f"{kind}-{suffix}-events", "facts_topic": f"{kind}-{suffix}-facts",
              "rollup_topic": f"{kind}-{suffix}-rollups", "dead_letter_topic": f"{kind}-{suffix}-dead"}
    return suffix, topics, f"kpi-{kind}-{suffix}"


def one_worker(args, bootstrap: str, topics: dict, app_id: str, run_dir: Path, results: dict):
    """The run's `kpi worker` (not started yet): its environment and log go into results["worker"];
    with args.memory_probe (bench.py --memory-probe) its memory is sampled into run_dir/worker-memory.jsonl."""
    from processor.services import KpiWorker

    env = worker_env(args, topics, app_id)
    if getattr(args, "memory_probe", False):
        from .memory import probe_env
        env.update(probe_env(run_dir / "worker-memory.jsonl"))
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


def start_broker(run_dir: Path):
    """Apache Kafka (KRaft, from the cached Maven jars) in run_dir/kafka, started and ready."""
    from processor.services import ApacheKafka

    broker = ApacheKafka(run_dir / "kafka")
    progress(f"starting Apache Kafka in {broker.data_dir} (log {broker.log_path}) ...")
    t0 = time.monotonic()
    broker.start(timeout=120)
    progress(f"Apache Kafka {broker.version} ready at {broker.bootstrap} in {time.monotonic() - t0:.1f}s")
    return broker


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
