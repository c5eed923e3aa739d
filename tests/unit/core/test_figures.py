"""Contract §2 queue figures on hand-built buckets: SegmentStats + figures.py, no pipeline.

Every expected number is worked out by hand in the comment next to it.
"""
from __future__ import annotations

import pytest

from processor.core.figures import abandon_rate, aht_seconds, asa_seconds, segment_figures, service_level
from processor.core.settings import QueueSettings
from processor.core.stats import SegmentStats

Q = QueueSettings()  # contract defaults: T = 20 s, S = 5 s, target 0.80, UTC


def bucket(*segments: tuple[str, float], q: QueueSettings = Q) -> SegmentStats:
    s = SegmentStats()
    for outcome, wait_s in segments:
        s.add_segment(outcome, round(wait_s * 1000), q)
    return s


MIXED = (
    ("answered", 5), ("answered", 12), ("answered", 20), ("answered", 20.001), ("answered", 45),
    ("abandoned", 2), ("abandoned", 4.999), ("abandoned", 5), ("abandoned", 30),
    ("flowed_out", 60),
)


def test_mixed_bucket_every_queue_figure():
    f = segment_figures(bucket(*MIXED))
    # offered = 5 answered + 4 abandoned + 1 flowed out
    assert (f["offered"], f["answered"], f["abandoned"], f["flowed_out"]) == (10, 5, 4, 1)
    # short abandons: wait < 5 s -> 2 s and 4.999 s (5 s itself is not short)
    assert f["short_abandoned"] == 2
    # answered with wait <= 20 s: 5, 12, 20 (20.001 is over)
    assert f["answered_within_threshold"] == 3
    # abandoned with wait <= 20 s: 2, 4.999, 5 (30 is over); short abandons are included
    assert f["abandoned_within_threshold"] == 3
    sl = f["service_level"]
    assert sl["answered_over_offered"] == pytest.approx(3 / 8)      # 3 / (10 - 2)
    assert sl["answered_over_answered"] == pytest.approx(3 / 5)     # 3 / 5
    assert sl["abandons_positive"] == pytest.approx(6 / 9)          # (3 + 3) / (5 + 4)
    # ASA = (5 + 12 + 20 + 20.001 + 45) / 5 = 102.001 / 5
    assert f["asa_seconds"] == pytest.approx(20.4002)
    # abandon rate = (4 - 2) / (10 - 2)
    assert f["abandon_rate"] == pytest.approx(0.25)
    # the flowed-out 60 s wait is the longest of all ended segments
    assert f["max_wait_seconds"] == 60.0
    assert f["handled"] == 0 and f["aht_seconds"] is None


@pytest.mark.parametrize("wait_ms, short", [(4_999, 1), (5_000, 0), (5_001, 0), (0, 1)])
def test_short_abandon_limit_is_strictly_less_than(wait_ms, short):
    s = SegmentStats()
    s.add_segment("abandoned", wait_ms, Q)
    assert s.short_abandoned == short
    assert s.abandoned == 1


@pytest.mark.parametrize("wait_ms, within", [(19_999, 1), (20_000, 1), (20_001, 0)])
def test_threshold_is_less_or_equal(wait_ms, within):
    a, b = SegmentStats(), SegmentStats()
    a.add_segment("answered", wait_ms, Q)
    b.add_segment("abandoned", wait_ms, Q)
    assert a.answered_within == within
    assert b.abandoned_within == within


def test_short_abandon_limit_zero_means_no_short_abandons():
    q = QueueSettings(short_abandon_seconds=0)
    s = bucket(("abandoned", 0), ("abandoned", 0.001), q=q)
    assert s.short_abandoned == 0  # wait < 0 never happens


def test_flowed_out_is_offered_but_neither_answered_nor_abandoned():
    f = segment_figures(bucket(("answered", 10), ("flowed_out", 3), ("flowed_out", 90)))
    assert (f["offered"], f["answered"], f["abandoned"], f["flowed_out"]) == (3, 1, 0, 2)
    # flowed-out contacts sit in the offered denominator: 1 / (3 - 0)
    assert f["service_level"]["answered_over_offered"] == pytest.approx(1 / 3)
    assert f["service_level"]["answered_over_answered"] == 1.0
    # abandons_positive ignores flowed out: (1 + 0) / (1 + 0)
    assert f["service_level"]["abandons_positive"] == 1.0
    # abandon rate 0 / 3 is a real zero, not null
    assert f["abandon_rate"] == 0.0
    # a 3 s flow-out is not a short abandon
    assert f["short_abandoned"] == 0
    assert f["max_wait_seconds"] == 90.0


def test_zero_denominators_are_none_not_zero():
    empty = segment_figures(SegmentStats())
    assert empty["service_level"] == {"answered_over_offered": None, "answered_over_answered": None,
                                      "abandons_positive": None}
    for name in ("asa_seconds", "abandon_rate", "max_wait_seconds", "aht_seconds"):
        assert empty[name] is None, name
    assert empty["offered"] == 0 and empty["talk_seconds"] == 0


def test_only_short_abandons_leaves_every_ratio_null():
    f = segment_figures(bucket(("abandoned", 1), ("abandoned", 3)))
    # offered - short = 2 - 2 = 0 and answered = 0
    assert f["service_level"]["answered_over_offered"] is None
    assert f["service_level"]["answered_over_answered"] is None
    # answered + abandoned = 2 > 0: both abandons are within 20 s -> 2 / 2
    assert f["service_level"]["abandons_positive"] == 1.0
    assert f["abandon_rate"] is None
    assert f["asa_seconds"] is None
    assert f["max_wait_seconds"] == 3.0


def test_only_flowed_out():
    f = segment_figures(bucket(("flowed_out", 40)))
    assert f["service_level"]["answered_over_offered"] == 0.0  # 0 / (1 - 0)
    assert f["service_level"]["answered_over_answered"] is None  # 0 / 0
    assert f["service_level"]["abandons_positive"] is None  # 0 / (0 + 0)
    assert f["abandon_rate"] == 0.0


def test_handle_time_sums_and_aht():
    s = SegmentStats()
    # leg 1: talk 200 s, hold 30 s, ACW 60 s = 290 s; leg 2: talk 100 s, no hold, no ACW (transferred) = 100 s
    s.add_leg(200_000, 30_000, 60_000)
    s.add_leg(100_000, 0, 0)
    f = segment_figures(s)
    assert f["handled"] == 2
    assert (f["talk_seconds"], f["hold_seconds"], f["acw_seconds"]) == (300.0, 30.0, 60.0)
    assert f["aht_seconds"] == pytest.approx(195.0)  # (300 + 30 + 60) / 2 = 390 / 2
    assert aht_seconds(s) == pytest.approx(195.0)
    # legs do not make offered
    assert f["offered"] == 0


def test_retracting_the_longest_segment_restores_the_previous_max():
    s = bucket(("answered", 10), ("answered", 50), ("answered", 50), ("abandoned", 70))
    assert s.max_wait_ms == 70_000
    s.add_segment("abandoned", 70_000, Q, sign=-1)
    assert s.max_wait_ms == 50_000
    s.add_segment("answered", 50_000, Q, sign=-1)
    assert s.max_wait_ms == 50_000  # one 50 s segment is still there
    s.add_segment("answered", 50_000, Q, sign=-1)
    assert s.max_wait_ms == 10_000
    s.add_segment("answered", 10_000, Q, sign=-1)
    assert s.max_wait_ms is None and s.offered == 0 and s.is_empty()


def test_retraction_undoes_every_counter():
    s = bucket(*MIXED)
    for outcome, wait in MIXED:
        s.add_segment(outcome, round(wait * 1000), Q, sign=-1)
    assert segment_figures(s) == segment_figures(SegmentStats())


def test_merge_adds_buckets():
    a = bucket(("answered", 10), ("abandoned", 2))
    b = bucket(("answered", 30), ("flowed_out", 80))
    b.add_leg(60_000, 0, 10_000)
    total = SegmentStats()
    total.merge(a)
    total.merge(b)
    f = segment_figures(total)
    assert (f["offered"], f["answered"], f["short_abandoned"], f["handled"]) == (4, 2, 1, 1)
    assert f["asa_seconds"] == 20.0           # (10 + 30) / 2
    assert f["max_wait_seconds"] == 80.0
    assert f["aht_seconds"] == 70.0           # (60 + 10) / 1
    # answered_over_offered = 1 (the 10 s answer) / (4 - 1)
    assert f["service_level"]["answered_over_offered"] == pytest.approx(1 / 3)


def test_queue_settings_change_threshold_and_short_limit():
    q = QueueSettings(threshold_seconds=30, short_abandon_seconds=10)
    s = bucket(("answered", 25), ("answered", 31), ("abandoned", 9.999), ("abandoned", 10), q=q)
    assert s.answered_within == 1        # 25 <= 30, 31 > 30
    assert s.short_abandoned == 1        # 9.999 < 10, 10 is not
    assert s.abandoned_within == 2       # both <= 30
    assert service_level(s)["answered_over_offered"] == pytest.approx(1 / 3)  # 1 / (4 - 1)
    assert abandon_rate(s) == pytest.approx(1 / 3)                            # (2 - 1) / (4 - 1)
    assert asa_seconds(s) == 28.0                                              # (25 + 31) / 2


def test_fractional_threshold_is_exact_to_the_millisecond():
    q = QueueSettings(threshold_seconds=12.5, short_abandon_seconds=2.25)
    assert (q.threshold_ms, q.short_abandon_ms) == (12_500, 2_250)
    s = bucket(("answered", 12.5), ("answered", 12.501), ("abandoned", 2.249), ("abandoned", 2.25), q=q)
    assert (s.answered_within, s.short_abandoned) == (1, 1)
