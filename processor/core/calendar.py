"""Local calendar arithmetic in a queue's time zone: business time between two instants, local days.

Business time is the part of [start, end) that falls inside the queue's weekly opening hours,
outside its holidays, with the hours read as local wall-clock times on each local date (so a
09:00-17:00 day stays 09:00-17:00 local across a daylight-saving change; a day that loses or
gains an hour at the change has that much less or more real time if the change falls inside the
opening hours). A wall-clock time that does not exist (inside a spring-forward gap) is read with
the offset before the change, as `zoneinfo` does with fold=0.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from .settings import Calendar, zone

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _local_ms(d: date, minute: int, tz_name: str) -> int:
    """Epoch ms of local wall-clock `minute` (0..1440) on local date `d`."""
    tz = zone(tz_name)
    if minute >= 1440:
        d, minute = d + timedelta(days=minute // 1440), minute % 1440
    dt = datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=tz)
    return int(dt.timestamp() * 1000)


def local_date(ts_ms: int, tz_name: str) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, zone(tz_name)).date()


_DAYS: dict[str, list[tuple[int, int]]] = {}  # time zone -> recently used local days (a small cache)


def local_day_bounds(ts_ms: int, tz_name: str) -> tuple[int, int]:
    """[start, end) in epoch ms of the local calendar day containing ts_ms (23, 24 or 25 hours long)."""
    days = _DAYS.setdefault(tz_name, [])
    for bounds in days:
        if bounds[0] <= ts_ms < bounds[1]:
            return bounds
    d = local_date(ts_ms, tz_name)
    bounds = (_local_ms(d, 0, tz_name), _local_ms(d + timedelta(days=1), 0, tz_name))
    days.insert(0, bounds)
    del days[16:]
    return bounds


def business_ms(start_ms: int, end_ms: int, calendar: Calendar, tz_name: str) -> int:
    """Milliseconds of [start_ms, end_ms) inside the calendar's opening hours (0 when end <= start)."""
    if end_ms <= start_ms:
        return 0
    first, last = local_date(start_ms, tz_name), local_date(end_ms, tz_name)
    total = 0
    d = first
    while d <= last:
        if d.isoformat() not in calendar.holidays:
            for open_min, close_min in calendar.hours[d.weekday()]:
                lo = max(start_ms, _local_ms(d, open_min, tz_name))
                hi = min(end_ms, _local_ms(d, close_min, tz_name))
                if hi > lo:
                    total += hi - lo
        d += timedelta(days=1)
    return total


def parse_hhmm(text: str) -> int:
    """'09:30' -> 570 minutes; '24:00' is allowed as the end of a day."""
    hh, sep, mm = text.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"{text!r} is not a HH:MM time")
    minutes = int(hh) * 60 + int(mm)
    if int(mm) > 59 or minutes > 1440:
        raise ValueError(f"{text!r} is not a time between 00:00 and 24:00")
    return minutes


def parse_ranges(ranges: list[str]) -> tuple[tuple[int, int], ...]:
    """['08:00-12:00', '13:00-17:00'] -> ((480, 720), (780, 1020)); sorted, non-overlapping, non-empty."""
    out = []
    for r in ranges:
        a, sep, b = str(r).partition("-")
        if not sep:
            raise ValueError(f"{r!r} is not a HH:MM-HH:MM range")
        lo, hi = parse_hhmm(a.strip()), parse_hhmm(b.strip())
        if hi <= lo:
            raise ValueError(f"{r!r} ends before it starts")
        out.append((lo, hi))
    out.sort()
    for (_, e1), (s2, _) in zip(out, out[1:]):
        if s2 < e1:
            raise ValueError(f"opening hours {ranges!r} overlap")
    return tuple(out)

