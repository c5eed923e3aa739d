"""A worker's catch-up, measured from /metrics: first processed event to zero lag on every stage
topic, with the worker's CPU, RSS and event-loop holds, and the problems its log shows."""
from __future__ import annotations

import re
import time
from pathlib import Path

from .report import labels_of, proc_cpu_seconds, progress, progress_done


CATCHUP_POLL = 0.2  # seconds between /metrics scrapes while the worker catches up


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
