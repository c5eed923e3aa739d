"""What scripts/bench.py (and soak_steady.py) read and check, in scripts/benchlib: who calls in a log,
and the event-loop holds.

The hold reading is checked against what the worker's own collector renders (processor/loophold.py,
from branch hot19loop), so a renamed metric shows here and not as "not exported" in a benchmark
run; until that module is merged, that one test is skipped.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from processor.core.events import format_ts
from processor.services.worker import parse_metrics

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400_000


def created(n: int, customer: str, ts_ms: int) -> dict:
    return {"event_id": f"e{n}", "type": "contact.created", "ts": format_ts(ts_ms), "contact_id": f"c{n}",
            "channel": "voice", "customer_id": customer}


def test_log_profile_counts_the_busiest_account_inside_one_recontact_window(bench):
    t0 = 1_795_392_000_000
    events = [created(i, "biz", t0 + i * DAY) for i in range(10)]           # one a day for 10 days
    events += [created(100 + i, "0", t0 + i * 1000) for i in range(12)]    # 12 unidentified
    events += [created(200, "cu-1", t0), created(201, "cu-2", t0)]
    events.append(dict(events[0]))                                          # a duplicate counts once
    lp = bench.log_profile(events)
    assert lp["contacts"] == 24
    assert lp["placeholder_share"] == pytest.approx(12 / 24)
    assert (lp["busiest_account"], lp["busiest_account_contacts_in_7_days"]) == ("biz", 7)
    assert lp["identified_customers"] == 3
    assert lp["identified_with_one_contact_share"] == pytest.approx(2 / 3)
    assert not lp["meets_issue_19_log"]


def test_distinct_customers_gives_every_contact_and_churn_its_own(bench):
    t0 = 1_795_392_000_000
    events = [created(i, "0", t0 + i) for i in range(3)]
    events.append({"event_id": "x", "type": "customer.churned", "ts": format_ts(t0), "customer_id": "0"})
    events.append({"event_id": "y", "type": "contact.queued", "ts": format_ts(t0), "contact_id": "c1", "queue_id": "q"})
    out = bench.distinct_customers(events)
    ids = [ev["customer_id"] for ev in out if "customer_id" in ev]
    assert len(set(ids)) == 4 and "0" not in ids
    assert out[4] == events[4] and events[0]["customer_id"] == "0"  # the input is left as it was


def test_loop_holds_read_what_the_worker_exports(bench):
    loophold = pytest.importorskip("processor.loophold", reason="the worker does not export event-loop holds yet")
    HoldCollector, HoldMonitor = loophold.HoldCollector, loophold.HoldMonitor
    monitor = HoldMonitor()
    for hold in (0.001, 0.05, 0.12, 0.3):
        monitor.observe(hold, now=1000.0)
    monitor.section("tick", 10.0, 10.4)
    registry = CollectorRegistry()
    registry.register(HoldCollector(monitor))
    holds = bench.loop_holds(parse_metrics(generate_latest(registry).decode()))
    assert holds["exported"] and holds["longest_s"] == pytest.approx(0.3)
    assert (holds["samples"], holds["over_100ms"], holds["over_250ms"]) == (4, 2, 1)
    assert holds["step_longest_s"]["tick"] == pytest.approx(0.4)
    assert bench.hold_met(holds) == "NOT met"
    assert "longest 300 ms" in bench.hold_text(holds)


def test_no_hold_metrics_is_said_not_guessed(bench):
    holds = bench.loop_holds({"kpi_events_processed_total": 5.0})
    assert holds == {"exported": False}
    assert bench.hold_text(holds).startswith("not exported")
    assert bench.hold_met(holds) == "not measured"
