"""Business hours (processor/core/calendar.py), by hand (their YAML settings: tests/unit/test_config_engine.py).

The calendar used below: Monday-Friday 09:00-17:00 in Europe/Paris (UTC+1 in winter, UTC+2 in
summer), closed at weekends and on 2026-12-25. 2026-11-20 is a Friday, 2026-11-23 a Monday.
"""
from __future__ import annotations

import pytest

from processor.core.calendar import business_ms, local_day_bounds, parse_ranges
from processor.core.settings import Calendar
from tests.coretools import at

NINE_TO_FIVE = ((540, 1020),)
PARIS = Calendar(hours=(NINE_TO_FIVE,) * 5 + ((), ()), holidays=frozenset({"2026-12-25"}))
ALL_SUNDAY = Calendar(hours=((),) * 6 + (((0, 1440),),))
H = 3_600_000


def biz(start: str, end: str, cal: Calendar = PARIS, tz: str = "Europe/Paris") -> float:
    return business_ms(at(start), at(end), cal, tz) / 1000


def test_over_a_weekend():
    # Fri 16:00 Paris (15:00Z) -> Mon 10:00 Paris (09:00Z): Fri 16:00-17:00 + Mon 09:00-10:00 = 2 h
    assert biz("2026-11-20T15:00:00Z", "2026-11-23T09:00:00Z") == 7200


def test_one_day_clipped_to_the_opening_hours():
    # Mon 07:00 -> 19:00 Paris: only 09:00-17:00 counts = 8 h
    assert biz("2026-11-23T06:00:00Z", "2026-11-23T18:00:00Z") == 8 * 3600


def test_edges_are_half_open():
    # from closing time (17:00 Paris) to opening time (09:00 next day): nothing
    assert biz("2026-11-23T16:00:00Z", "2026-11-24T08:00:00Z") == 0
    # one second either side of opening: one second
    assert biz("2026-11-24T07:59:59Z", "2026-11-24T08:00:01Z") == 1
    # an empty or reversed span
    assert biz("2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z") == 0
    assert biz("2026-11-24T10:00:00Z", "2026-11-24T09:00:00Z") == 0


def test_holiday_is_closed():
    # Thu 24 Dec 16:00 Paris -> Sat 26 Dec: Thu 16:00-17:00 only (25th holiday, 26th a Saturday)
    assert biz("2026-12-24T15:00:00Z", "2026-12-26T12:00:00Z") == 3600


def test_business_hours_follow_the_local_clock_across_daylight_saving():
    # 09:00-17:00 Paris is 08:00-16:00Z in summer (Friday 27 March 2026 is still winter: 08:00-16:00Z
    # only from Monday 30 March); Monday 30 March 08:00Z = 10:00 CEST -> 1 h into the day
    assert biz("2026-03-30T06:00:00Z", "2026-03-30T08:00:00Z") == 3600
    # the Sunday the clocks go forward is 23 hours long, the Sunday they go back 25
    assert biz("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", ALL_SUNDAY) == 23 * 3600
    assert biz("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", ALL_SUNDAY) == 25 * 3600
    assert local_day_bounds(at("2026-03-29T12:00:00Z"), "Europe/Paris") == (at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z"))
    assert local_day_bounds(at("2026-10-25T12:00:00Z"), "Europe/Paris") == (at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"))


def test_a_window_until_midnight():
    late = Calendar(hours=(((1320, 1440),),) * 7)  # 22:00-24:00 every day, UTC
    assert business_ms(at("2026-11-23T21:00:00Z"), at("2026-11-24T01:00:00Z"), late, "UTC") == 2 * H


def test_parse_ranges():
    assert parse_ranges(["13:00-17:00", "08:00-12:00"]) == ((480, 720), (780, 1020))
    assert parse_ranges(["00:00-24:00"]) == ((0, 1440),)
    for bad in (["17:00-09:00"], ["25:00-26:00"], ["9-17"], ["08:00-12:00", "11:00-13:00"], ["08:60-09:00"]):
        with pytest.raises(ValueError):
            parse_ranges(bad)
