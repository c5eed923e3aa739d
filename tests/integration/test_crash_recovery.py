"""A worker killed with SIGKILL in the middle of the stream, then restarted: nothing is lost or counted twice.

With the in-memory table store (the default) and a new worker on an empty local folder: its
state comes back from the changelog topics only. Both guarantees: at_least_once (state idempotent
by event and fact ids; a rollup version may be published twice) and exactly_once (Kafka
transactions; a consumer reading committed messages sees every rollup version once).
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from processor.services import KpiWorker
from scenario import (BAD_MESSAGES, assert_gauges_equal_replay, assert_rollups_equal_replay, caught_up,
                      first_half_produced, produce, read_all, record_key)

pytestmark = pytest.mark.integration


# ("rocksdb://", "same") held three times and lost one offered contact once (docs/limitations.md#known-limitations).
# exactly_once after a restart on an empty folder lost 2 of 5 offered in one of four CI runs, and here once
# never caught up: records dropped between the rebuild and the seek did not come again on a partition with
# nothing committed (issue 24, docs/reliability.md; worker/patches.py track_seeks).


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
@pytest.mark.parametrize("store, folder", [("memory://", "empty")])
def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(kafka, feed, tmp_path, store, folder, guarantee):
    env, half = first_half_produced(kafka.bootstrap, feed, {"KPI_STORE": store,
                                                            "KPI_KAFKA__PROCESSING_GUARANTEE": guarantee})
    topic, events = env["KPI_KAFKA__INPUT_TOPIC"], feed["events"]

    first = KpiWorker(kafka.bootstrap, work_dir=tmp_path / "first", config=feed["config"], env=env).start()
    try:
        s = first.wait_for(lambda s: s.get("kpi_events_processed_total", 0) >= half // 2, timeout=120,
                           what="half of the first batch processed")
    finally:
        first.kill()  # SIGKILL: no flush, no commit, no goodbye
    print(f"\nkilled the first worker after {s['kpi_events_processed_total']:.0f} of {half} events")

    asyncio.run(produce(kafka.bootstrap, topic, events[half:], BAD_MESSAGES))
    pipeline = feed["pipeline"]
    last_event_s = pipeline.contacts.stream_ms / 1000
    t0 = time.monotonic()
    again = tmp_path / ("first" if folder == "same" else "second")
    with KpiWorker(kafka.bootstrap, work_dir=again, config=feed["config"], env=env) as second:
        s = second.wait_for(lambda s: caught_up(s, last_event_s), timeout=180, what="caught up after restart")
        print(f"second worker caught up in {time.monotonic() - t0:.1f}s "
              f"({s['kpi_events_processed_total']:.0f} events re-read or new)")
        assert_gauges_equal_replay(s, feed)
    if guarantee == "at_least_once":
        records, keys = assert_rollups_equal_replay(kafka.bootstrap, env, feed)
    else:
        records, keys = assert_rollups_equal_replay(kafka.bootstrap, env, feed, isolation_level="read_committed")
        committed = [json.loads(v) for _k, v in asyncio.run(read_all(kafka.bootstrap, env["KPI_KAFKA__ROLLUP_TOPIC"],
                                                                      isolation_level="read_committed"))]
        versions = Counter((record_key(r), r["version"]) for r in committed)
        assert [kv for kv, n in versions.items() if n > 1] == [], "a rollup version was committed twice"
    print(f"rollups after the crash ({guarantee}): {records} records for {keys} keys, latest equal to replay")
