"""Live view: queue depth, longest wait, rolling windows 5m / 15m / 60m and "today" in the queue's zone.

Rolling windows are summed from one-minute buckets keyed by segment *end*: at `now` the N-minute
window holds the segments that ended in the current minute and the N - 1 minutes before it.
"""
from __future__ import annotations

import pytest

from processor.core.live import agents_view, live_now, live_view
from processor.core.queues import local_midnight_ms
from processor.core.settings import QueueSettings
from tests.coretools import Contact, at, by_time, engine, ev, run


def view(r, now: str, queue: str = "Q1", channel: str = "voice") -> dict:
    rows = {(x["queue_id"], x["channel"]): x for x in live_view(r.pipeline.queues, at(now))}
    return rows[(queue, channel)]


def window_contacts() -> list[Contact]:
    return [
        # ended 09:00:30, answered after 10 s: only in "today" at 10:00:30 (60m starts at minute 09:01)
        Contact("w1", created="09:00:20").queued("Q1", "09:00:20").answered("Q1", "09:00:30"),
        # ended 09:01:00, abandoned after 30 s: 60m
        Contact("w2", created="09:00:30").queued("Q1", "09:00:30").abandoned("Q1", "09:01:00"),
        # ended 09:50:10, answered after 25 s: 15m (starts at minute 09:46) and 60m
        Contact("w3", created="09:49:45").queued("Q1", "09:49:45").answered("Q1", "09:50:10"),
        # ended 09:55:59.999: just outside 5m (starts at minute 09:56), inside 15m; abandoned after 8 s
        Contact("w4", created="09:55:51.999").queued("Q1", "09:55:51.999").abandoned("Q1", "09:55:59.999"),
        # ended 09:56:00.000, answered after 5 s: 5m, 15m, 60m
        Contact("w5", created="09:55:55").queued("Q1", "09:55:55").answered("Q1", "09:56:00"),
        # ended 10:00:20, abandoned after 2 s (short): every window
        Contact("w6", created="10:00:18").queued("Q1", "10:00:18").abandoned("Q1", "10:00:20"),
    ]


def test_rolling_windows_and_today():
    r = run(by_time(*window_contacts()))
    w = view(r, "10:00:30")["windows"]
    # 5m = minutes 09:56..10:00: w5 (answered 5 s), w6 (short abandon 2 s)
    assert (w["5m"]["offered"], w["5m"]["answered"], w["5m"]["abandoned"], w["5m"]["short_abandoned"]) == (2, 1, 1, 1)
    assert w["5m"]["service_level"]["answered_over_offered"] == 1.0      # 1 / (2 - 1)
    assert w["5m"]["asa_seconds"] == 5.0
    assert w["5m"]["abandon_rate"] == 0.0                                # (1 - 1) / (2 - 1)
    assert w["5m"]["max_wait_seconds"] == 5.0
    # 15m = minutes 09:46..10:00: + w3 (answered 25 s), w4 (abandoned 8 s)
    assert (w["15m"]["offered"], w["15m"]["answered"], w["15m"]["abandoned"]) == (4, 2, 2)
    assert w["15m"]["service_level"] == pytest.approx({
        "answered_over_offered": 1 / 3,        # 1 within (w5) / (4 - 1)
        "answered_over_answered": 1 / 2,       # 1 / 2
        "abandons_positive": 3 / 4,            # (1 + 2 abandons <= 20 s) / (2 + 2)
    })
    assert w["15m"]["asa_seconds"] == 15.0                               # (25 + 5) / 2
    assert w["15m"]["abandon_rate"] == pytest.approx(1 / 3)              # (2 - 1) / (4 - 1)
    assert w["15m"]["max_wait_seconds"] == 25.0
    # 60m = minutes 09:01..10:00: + w2 (abandoned 30 s); w1 ended in minute 09:00 and is out
    assert (w["60m"]["offered"], w["60m"]["answered"], w["60m"]["abandoned"]) == (5, 2, 3)
    assert w["60m"]["abandon_rate"] == pytest.approx(2 / 4)              # (3 - 1) / (5 - 1)
    assert w["60m"]["max_wait_seconds"] == 30.0
    # today (UTC): everything: 3 answered (10, 25, 5 s), 3 abandoned
    assert (w["today"]["offered"], w["today"]["answered"]) == (6, 3)
    assert w["today"]["asa_seconds"] == pytest.approx(40 / 3)             # (10 + 25 + 5) / 3
    assert w["today"]["service_level"]["answered_over_offered"] == pytest.approx(2 / 5)  # (w1, w5) / (6 - 1)


def test_windows_over_many_more_buckets_than_minutes_in_the_window():
    """Six hours of one abandon a minute (ended at hh:mm:30): each window holds its own minutes only,
    whether it is summed by looking its minutes up or by walking every bucket kept."""
    contacts = []
    for i in range(6 * 60):
        h, m = divmod(4 * 60 + i, 60)
        contacts.append(Contact(f"m{i}", created=f"{h:02d}:{m:02d}:10").queued("Q1", f"{h:02d}:{m:02d}:10")
                        .abandoned("Q1", f"{h:02d}:{m:02d}:30"))
    r = run(by_time(*contacts))
    for now, offered in (("09:59:45", {"5m": 5, "15m": 15, "60m": 60, "today": 360}),
                         ("10:02:00", {"5m": 2, "15m": 12, "60m": 57, "today": 360})):
        w = view(r, now)["windows"]
        assert {name: w[name]["offered"] for name in offered} == offered, now
        assert w["5m"]["abandoned"] == offered["5m"]


def test_minutes_between_sums_the_minutes_that_start_in_the_range_as_a_walk_over_every_bucket_does():
    """The staffing window's inputs (capacity.staffing_view) over six hours of buckets: looked up minute
    by minute, the same sum as the walk over every bucket kept, at the edges of the range too."""
    contacts = []
    for i in range(6 * 60):
        h, m = divmod(4 * 60 + i, 60)
        contacts.append(Contact(f"m{i}", created=f"{h:02d}:{m:02d}:10").queued("Q1", f"{h:02d}:{m:02d}:10")
                        .abandoned("Q1", f"{h:02d}:{m:02d}:{10 + i % 40:02d}"))
    book = run(by_time(*contacts)).pipeline.queues
    buckets = book.minutes[("Q1", "voice")]
    assert len(buckets) == 6 * 60
    for since, until in (("09:00:00", "09:30:00"), ("03:00:00", "04:01:00"), ("09:59:00", "10:00:00"),
                         ("09:30:00", "09:30:00"), ("09:00:30", "09:30:30"), ("00:00:00", "23:59:00")):
        lo, hi = at(since), at(until)
        got = book.minutes_between(("Q1", "voice"), lo, hi)
        inside = [b for start, b in buckets.items() if lo <= start < hi]
        want = {"offered": sum(b.offered for b in inside), "abandoned": sum(b.abandoned for b in inside),
                "max_wait_ms": max((b.max_wait_ms for b in inside), default=None)}
        assert {"offered": got.offered, "abandoned": got.abandoned, "max_wait_ms": got.max_wait_ms} == want, since
    assert book.minutes_between(("Q1", "voice"), at("09:00:00"), at("09:30:00")).offered == 30
    assert book.minutes_between(("Q1", "chat"), at("09:00:00"), at("09:30:00")).offered == 0


def test_windows_roll_forward_with_now():
    r = run(by_time(*window_contacts()))
    # at 10:04:59.999 the 5m window is minutes 10:00..10:04: only w6
    assert view(r, "10:04:59.999")["windows"]["5m"]["offered"] == 1
    # at 10:05:00 it is minutes 10:01..10:05: nothing; every ratio is null, counts are 0
    w5 = view(r, "10:05:00")["windows"]["5m"]
    assert w5["offered"] == 0 and w5["handled"] == 0
    assert w5["service_level"] == {"answered_over_offered": None, "answered_over_answered": None,
                                   "abandons_positive": None}
    assert w5["asa_seconds"] is None and w5["abandon_rate"] is None
    assert w5["max_wait_seconds"] is None and w5["aht_seconds"] is None
    # 60m at 11:00:10 = minutes 10:01..11:00: nothing either
    assert view(r, "11:00:10")["windows"]["60m"]["offered"] == 0


def test_handle_time_in_windows():
    r = run(Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05")
            .hold("10:01:00", "10:01:10").wrapup("10:02:05", "10:02:35").events)
    w = view(r, "10:03:00")["windows"]
    # talk 10:00:05 -> 10:02:05 = 120 s minus 10 s hold = 110; hold 10; ACW 30 -> AHT 150
    assert w["5m"]["handled"] == 1 and w["5m"]["aht_seconds"] == 150.0
    assert w["today"]["aht_seconds"] == 150.0


def test_queue_depth_and_longest_wait_at_a_given_time():
    waiting = [
        Contact("q1", created="09:59:00").queued("Q1", "09:59:00"),
        Contact("q2", created="10:00:10").queued("Q1", "10:00:10"),
        Contact("q3", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05"),  # no longer waiting
        Contact("q4", created="10:00:00").queued("Q2", "10:00:00"),                             # other queue
    ]
    r = run(by_time(*waiting))
    row = view(r, "10:00:30")
    assert row["waiting"] == 2                             # q1, q2
    assert row["longest_wait_seconds"] == 90.0             # 10:00:30 - 09:59:00
    assert view(r, "10:00:30", "Q2")["waiting"] == 1
    assert view(r, "10:00:30", "Q2")["longest_wait_seconds"] == 30.0
    # q1 abandons at 10:00:40: q2 is the oldest; at 10:00:50 it has waited 40 s
    r.pipeline.feed(ev("contact.abandoned", "10:00:40", "q1", queue_id="Q1"))
    row = view(r, "10:00:50")
    assert (row["waiting"], row["longest_wait_seconds"]) == (1, 40.0)
    r.pipeline.feed(ev("contact.flowed_out", "10:01:00", "q2", queue_id="Q1", reason="callback"))
    row = view(r, "10:01:10")
    assert (row["waiting"], row["longest_wait_seconds"]) == (0, None)


def test_transferred_contact_waits_in_the_new_queue():
    c = (Contact("c1", created="10:00:00").queued("Q1", "10:00:00").answered("Q1", "10:00:05")
         .transferred("Q2", "10:01:00").queued("Q2", "10:01:00"))
    r = run(c.events)
    assert view(r, "10:01:30", "Q1")["waiting"] == 0
    assert (view(r, "10:01:30", "Q2")["waiting"], view(r, "10:01:30", "Q2")["longest_wait_seconds"]) == (1, 30.0)


def test_waiting_only_queue_has_null_figures():
    r = run(Contact("c1", created="10:00:00").queued("Q1", "10:00:00").events)
    row = view(r, "10:00:07")
    assert (row["waiting"], row["longest_wait_seconds"]) == (1, 7.0)
    assert row["windows"]["today"]["offered"] == 0
    assert row["windows"]["today"]["service_level"]["answered_over_offered"] is None
    assert r.records == []                                 # an open segment makes no rollup


# ---------------------------------------------------------------------------- today in the queue's time zone


ZONES = engine(retention_s=86_400, queues={
    "ny": QueueSettings(time_zone="America/New_York"),
    "ber": QueueSettings(time_zone="Europe/Berlin"),
})


def zone_run(ends: list[str], settings=ZONES):
    contacts = []
    for i, end in enumerate(ends):
        for q in ("ny", "ber", "utc"):
            c = Contact(f"{q}{i}", created=at(end) - 10_000)
            contacts.append(c.queued(q, at(end) - 10_000).answered(q, end))   # every wait is 10 s
    return run(by_time(*contacts), settings)


def test_today_starts_at_local_midnight_of_each_queue():
    # 2026-11-23: New York is UTC-5, Berlin UTC+1
    r = zone_run([
        "2026-11-22T22:50:00Z",   # Berlin 22nd 23:50  | NY 22nd 17:50
        "2026-11-22T23:10:00Z",   # Berlin 23rd 00:10  | NY 22nd 18:10
        "2026-11-23T00:10:00Z",   # Berlin 23rd 01:10  | NY 22nd 19:10 | UTC 23rd 00:10
        "2026-11-23T04:50:00Z",   # Berlin 23rd 05:50  | NY 22nd 23:50
        "2026-11-23T05:10:00Z",   # Berlin 23rd 06:10  | NY 23rd 00:10
    ])
    now = "2026-11-23T05:30:00Z"
    assert view(r, now, "ny")["windows"]["today"]["offered"] == 1    # 05:10Z only (NY midnight = 05:00Z)
    assert view(r, now, "ber")["windows"]["today"]["offered"] == 4   # from 23:00Z on the 22nd
    assert view(r, now, "utc")["windows"]["today"]["offered"] == 3   # from 00:00Z on the 23rd
    # one minute before New York's midnight, NY's "today" is still the 22nd: the first four
    assert view(r, "2026-11-23T04:59:00Z", "ny")["windows"]["today"]["offered"] == 4


def test_local_midnight_on_dst_days():
    # 2026-03-08: New York springs forward at 02:00 local (EST -5 -> EDT -4)
    assert local_midnight_ms(at("2026-03-08T12:00:00Z"), "America/New_York") == at("2026-03-08T05:00:00Z")
    assert local_midnight_ms(at("2026-03-09T03:59:59.999Z"), "America/New_York") == at("2026-03-08T05:00:00Z")
    assert local_midnight_ms(at("2026-03-09T04:00:00Z"), "America/New_York") == at("2026-03-09T04:00:00Z")
    # 2026-10-25: Berlin falls back at 03:00 local (CEST +2 -> CET +1): a 25-hour day
    assert local_midnight_ms(at("2026-10-25T22:59:59Z"), "Europe/Berlin") == at("2026-10-24T22:00:00Z")
    assert local_midnight_ms(at("2026-10-25T23:00:00Z"), "Europe/Berlin") == at("2026-10-25T23:00:00Z")


def test_today_across_a_dst_change():
    # New York's 23-hour day, 2026-03-08 05:00Z .. 2026-03-09 04:00Z
    r = zone_run([
        "2026-03-08T04:59:59.999Z",   # 7th 23:59:59.999 EST: yesterday
        "2026-03-08T05:00:00Z",       # 8th 00:00 EST
        "2026-03-08T07:30:00Z",       # 8th 03:30 EDT (02:00-03:00 does not exist)
        "2026-03-09T03:50:00Z",       # 8th 23:50 EDT
        "2026-03-09T04:10:00Z",       # 9th 00:10 EDT
    ])
    assert view(r, "2026-03-09T03:55:00Z", "ny")["windows"]["today"]["offered"] == 3
    assert view(r, "2026-03-09T04:15:00Z", "ny")["windows"]["today"]["offered"] == 1


def test_agents_by_state():
    r = run([
        ev("agent.state_changed", "10:00:00", agent_id="a1", state="available", queues=("Q1", "Q2")),
        ev("agent.state_changed", "10:00:00", agent_id="a2", state="busy", queues=("Q1",)),
        ev("agent.state_changed", "10:01:00", agent_id="a1", state="acw", queues=("Q1",)),
        ev("agent.state_changed", "09:59:00", agent_id="a2", state="offline", queues=("Q1",)),  # older: ignored
    ])
    assert agents_view(r.pipeline.queues) == {"Q1": {"acw": 1, "busy": 1}, "Q2": {}}


def test_live_now_follows_wall_clock_only_when_the_stream_is_live():
    wall = at("12:00:00")
    assert live_now(at("11:59:50"), wall) == wall             # live: keep rolling with the clock
    assert live_now(at("11:54:59.999"), wall) == at("11:54:59.999")   # > 5 min behind: replay, stream time
    assert live_now(at("12:00:05"), wall) == at("12:00:05")   # clock behind the stream
