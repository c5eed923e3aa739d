"""The hold monitor sees the loop held by any task and names the timed steps; a sliced pass lets others run."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import CollectorRegistry, generate_latest

from processor.loophold import BUCKETS, TURN_SECONDS, HoldCollector, HoldMonitor, Slicer


def test_observations_fill_cumulative_buckets_and_keep_the_longest():
    m = HoldMonitor(buckets=(0.01, 0.1, 1.0))
    for hold in (0.0, 0.005, 0.05, 0.5, 3.0):
        m.observe(hold)
    assert m.cumulative() == [("0.01", 2), ("0.1", 3), ("1.0", 4), ("+Inf", 5)]
    assert m.count == 5 and m.max == 3.0 and abs(m.sum - 3.555) < 1e-9


def test_a_hold_over_the_threshold_is_logged_with_the_steps_it_overlapped(caplog):
    now = [100.0]
    m = HoldMonitor(warn_seconds=0.25, clock=lambda: now[0])
    m.section("housekeeping (two)", 99.0, 99.7)   # inside the hold
    m.section("tick", 98.0, 98.1)                  # before it
    with caplog.at_level(logging.WARNING, logger="processor"):
        m.observe(0.1, 100.0)                      # under the threshold: not logged
        m.observe(1.0, 100.0)                      # held from 99.0 to 100.0
    assert [r.getMessage() for r in caplog.records] == [
        "the event loop was held 1.00 s (housekeeping (two) 0.70 s): /metrics, the live snapshot and every stage "
        "waited that long"]
    assert m.warnings == 1 and m.max_step == "housekeeping (two) 0.70 s"
    assert set(m.step_max) == {"housekeeping (two)", "tick"} and abs(m.step_max["housekeeping (two)"] - 0.7) < 1e-9


def test_a_hold_spent_computing_counts_in_cpu_time_too():
    m = HoldMonitor(period=0.005)

    async def main():
        task = asyncio.create_task(m.run())
        await asyncio.sleep(0.02)
        end = time.process_time() + 0.2
        while time.process_time() < end:  # computes: holds the loop and uses the CPU
            pass
        await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    assert 0 < m.cpu_max <= m.max and m.max >= 0.15


def test_the_monitor_task_sees_a_hold_it_had_no_part_in():
    m = HoldMonitor(period=0.005)

    async def main():
        task = asyncio.create_task(m.run())
        await asyncio.sleep(0.02)
        with m.step("blocking step"):
            time.sleep(0.2)  # holds the loop: the monitor cannot run meanwhile
        await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    assert m.max >= 0.15  # at least the sleep, less the monitor's own period and clock granularity
    assert 0 <= m.cpu_max <= m.max  # time.sleep computes nothing: its hold in CPU time is (nearly) none
    assert m.max_step.startswith("blocking step")
    assert m.count >= 2


def test_collector_exposes_the_histogram_the_maximum_and_the_steps():
    m = HoldMonitor()
    m.observe(0.002)
    m.observe(0.3)
    m.section("tick", 0.0, 0.004)
    registry = CollectorRegistry()
    registry.register(HoldCollector(m))
    text = generate_latest(registry).decode()
    assert 'kpi_event_loop_hold_seconds_bucket{le="0.005"} 1.0' in text
    assert 'kpi_event_loop_hold_seconds_bucket{le="+Inf"} 2.0' in text
    assert "kpi_event_loop_hold_seconds_count 2.0" in text
    assert "kpi_event_loop_hold_max_seconds 0.3" in text
    assert "kpi_event_loop_hold_cpu_seconds_count 0.0" in text and "kpi_event_loop_hold_cpu_max_seconds 0.0" in text
    assert 'kpi_event_loop_step_max_seconds{step="tick"} 0.004' in text
    assert len([ln for ln in text.splitlines() if ln.startswith("kpi_event_loop_hold_seconds_bucket")]) == len(BUCKETS) + 1


def test_a_sliced_pass_lets_other_tasks_run_between_its_slices_and_names_them():
    m = HoldMonitor()
    order = []

    async def other():
        for _ in range(3):
            order.append("other")
            await asyncio.sleep(0)

    async def sliced():
        slicer = Slicer(budget=0, monitor=m, name="pass")
        for i in range(3):
            await slicer.pause()
            order.append(i)
        slicer.done()
        return slicer.yields

    async def main():
        results = await asyncio.gather(sliced(), other())
        return results[0]

    assert asyncio.run(main()) == 3
    assert order.index("other") < order.index(1) and order.count("other") == 3
    assert "pass" in m.step_max


def test_a_slice_not_used_up_does_not_suspend():
    async def main():
        slicer = Slicer(budget=3600)
        for _ in range(100):
            await slicer.pause()
        return slicer.yields

    assert asyncio.run(main()) == 0


def test_slices_of_different_passes_share_the_loops_turn():
    """Three passes ready at once each used to take a whole slice before the loop came round: the hold
    was their sum. Once the monitor has not woken for TURN_SECONDS, every slice ends at its next pause."""
    now = [0.0]
    m = HoldMonitor(clock=lambda: now[0])
    slicers = [Slicer(budget=3600, clock=lambda: now[0], monitor=m, name=f"pass {i}") for i in range(3)]
    assert not any(s.due() for s in slicers)  # the monitor is not running: no turn to share
    m.woke = 0.0  # the loop last came round at 0 (as HoldMonitor.run sets it on every wake-up)
    now[0] = TURN_SECONDS * 0.99
    assert not any(s.due() for s in slicers)
    now[0] = TURN_SECONDS

    async def passes():
        for s in slicers:
            await s.pause()

    asyncio.run(passes())
    assert [s.yields for s in slicers] == [1, 1, 1]
    m.woke = now[0]  # the loop came round: each slice has the turn again
    asyncio.run(passes())
    assert [s.yields for s in slicers] == [1, 1, 1]


def test_the_monitor_marks_each_wake_up_as_the_loops_turn_and_stops_marking_when_it_stops():
    m = HoldMonitor(period=0.001)

    async def main():
        task = asyncio.create_task(m.run())
        await asyncio.sleep(0.02)
        woke = m.woke
        await asyncio.sleep(0.02)
        later = m.woke
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return woke, later

    woke, later = asyncio.run(main())
    assert woke < later < float("inf")
    assert m.woke == float("inf")


def test_a_full_collection_is_timed_as_a_step_while_the_monitor_runs():
    import gc

    m = HoldMonitor(period=0.005)
    callbacks = len(gc.callbacks)

    async def main():
        task = asyncio.create_task(m.run())
        await asyncio.sleep(0.01)
        gc.collect()
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert "garbage collector (generation 2)" in m.step_max
    assert len(gc.callbacks) == callbacks  # its callback is removed when the monitor stops
