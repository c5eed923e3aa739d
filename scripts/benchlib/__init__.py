"""The benchmarks' shared library: scripts/bench.py, scripts/soak_steady.py and scripts/bench_holds.py
are command lines over it, so a figure is measured the same way in each (one catch-up, one latency
probe, one hold reading, one customer profile).

One module per step of a run: `report` (progress, figures, the machine, the targets), `profile`
(who calls), `events` (the simulated history and live pool, `kpi replay` timed), `kafka` (broker,
production, topics, worker environment, cleanup), `catchup` (first event to zero lag), `live`
(live feed, probes and latency, soak RSS), `memory` (what was alive at the peak RSS, housekeeping
overruns) and `holds` (event-loop holds). Scripts import it after
putting scripts/ on sys.path; it puts the repository on sys.path for `processor`.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from .report import (TARGETS, figure, fmt_rate, host_info, labels_of, percentile,  # noqa: E402
                     proc_cpu_seconds, proc_status, progress, progress_done)
from .profile import (BENCH_BUSY_SHARE, BENCH_UNIDENTIFIED, PROFILES, RECONTACT_WINDOW_MS,  # noqa: E402
                      bench_model, distinct_customers, log_profile, profile_text)
from .holds import HOLD, HOLD_MAX, STEP_MAX, hold_met, hold_text, loop_holds  # noqa: E402
from .events import (ID_FIELDS, LIVE_POOL_MAX, SIM_EVENTS_PER_HOUR, dumps, event_key,  # noqa: E402
                     generate_events, live_events, live_pool, pass_id_fields, run_replay, simulate)
from .kafka import (baseline_consume, delete_topics, one_worker, produce_bulk, run_names,  # noqa: E402
                    shut_down, start_broker, worker_env)
from .catchup import (CATCHUP_POLL, caught_up, lag_by_topic, measure_catchup, stage_topics,  # noqa: E402
                      worker_log_problems)
from .memory import housekeeping_overruns, memory_text, probe_summary  # noqa: E402
from .live import (PROBE_EVERY, PROBE_QUEUE, PROBE_SERIES, RSS_EVERY, Poller, ProbeLog,  # noqa: E402
                   latency_summary, live_feed, rss_growth, scrape_cost, soak_flat, wait_for_probe)
