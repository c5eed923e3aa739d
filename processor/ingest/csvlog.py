"""Per-call CSV exports to contract events: a column mapping and a pure row mapper (no I/O, no clock).

One row is one call: arrival, queue entry and exit, outcome, service start and end, agent. The
mapping (a YAML file, see docs/ingest.md and deploy/config/csv-mapping.example.yaml) names the
columns, the outcome values, the time zone and formats, and the values that mean "none".

What real exports do, and what is done with it (each counted in the run's summary):
- times of day with only a date of arrival, crossing midnight: a time more than 12 h before the
  previous time of the call is on the next day;
- a time up to `skew_seconds` before the previous one (the agent side starting service 1-2 s
  before the queue side logs the exit): moved to the previous time;
- `0:00:00` (or any `none` value) means no time;
- zero-second abandons are kept (queue entry = exit: wait 0, a short abandon); an abandon with no
  exit time is one too;
- calls that ended in the voice menu (no queue, or an outcome listed as `never_queued`) give only
  contact.created;
- rows missing a field the call needs (contact id, arrival, outcome, agent of an answered call...)
  are skipped, with the reason.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ..core.events import CHANNELS
from .common import MAX_EPOCH, MIN_EPOCH, STAMPS, Tally, line_id, rfc3339

MAX_ID = 200
FLOW_REASONS = ("timeout", "callback", "voicemail", "overflow")
TIME_COLUMNS = ("arrival", "queue_start", "queue_exit", "service_start", "service_end", "wrapup_end")
COLUMNS = ("contact_id", "arrival_date", *TIME_COLUMNS, "queue", "outcome", "agent", "customer_id", "channel")
REQUIRED_COLUMNS = ("contact_id", "arrival", "queue", "outcome")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# What a time cell cached by its raw text holds besides local seconds: both are below any time that
# can be read (year 1 is -6.2e10 s), so the common case is told apart by one comparison.
_NONE_CELL = -(1 << 62)  # a value meaning "no time"
_BAD_CELL = _NONE_CELL - 1  # unreadable
_VARIES = 1 << 62  # a day whose offset from UTC is not one (above any offset)
_PAD = [""]
_MIDNIGHT = {key: f"{key} after midnight: on the day after arrival" for key in TIME_COLUMNS}
_DIRECTIVES = {"Y": r"(?P<Y>\d{4})", "y": r"(?P<y>\d{2})", "m": r"(?P<m>\d{1,2})", "d": r"(?P<d>\d{1,2})",
               "H": r"(?P<H>\d{1,2})", "I": r"(?P<I>\d{1,2})", "M": r"(?P<M>\d{1,2})", "S": r"(?P<S>\d{1,2})",
               "f": r"(?P<f>\d{1,9})", "p": r"(?P<p>[AaPp][Mm])"}


class MappingError(ValueError):
    """The mapping (or the file's header against it) is unusable; the message is one line for the user."""


def _pattern(fmt: str, what: str):
    """A strptime-like format compiled to one regular expression (strptime costs ~8 µs a call)."""
    out, i = [], 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            if d == "%":
                out.append("%")
            elif d in _DIRECTIVES:
                if _DIRECTIVES[d] in out:
                    raise MappingError(f"{what} {fmt!r}: %{d} appears twice")
                out.append(_DIRECTIVES[d])
            else:
                raise MappingError(f"{what} {fmt!r}: %{d} is not supported (use %Y %y %m %d %H %I %M %S %f %p)")
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z").match


class Mapping:
    """The validated mapping. Build it with `Mapping.from_dict(yaml.safe_load(...))`."""

    def __init__(self, columns: dict[str, str], outcomes: dict[str, object], time_zone: str = "UTC",
                 time_format: str = "%Y-%m-%d %H:%M:%S", date_format: str = "%Y-%m-%d",
                 none: list[str] | None = None, channel: str = "voice", skew_seconds: int = 2,
                 delimiter: str = ",") -> None:
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise MappingError(f"columns: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(COLUMNS)})")
        missing = [k for k in REQUIRED_COLUMNS if not columns.get(k)]
        if missing:
            raise MappingError(f"columns: {', '.join(missing)} must name a column of the file")
        if not all(isinstance(v, str) and v for v in columns.values()):
            raise MappingError("columns: every value must be a column name (text)")
        self.columns = dict(columns)
        try:
            self.tz = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise MappingError(f"time_zone: {time_zone!r} is not an IANA time zone (e.g. Europe/Paris)") from None
        self.utc = time_zone in ("UTC", "Etc/UTC")
        self.time_format, self.date_format = time_format, date_format
        self.time_match = _pattern(time_format, "time_format")
        self.date_match = _pattern(date_format, "date_format") if "arrival_date" in columns else None
        if "arrival_date" not in columns and not ("%Y" in time_format or "%y" in time_format):
            raise MappingError(f"time_format {time_format!r} has no date (%Y): give the date in it, or name the "
                               "arrival_date column so that times of day are read on the date of arrival")
        self.none = frozenset(str(v).strip() for v in (none if none is not None else ["", "0:00:00"]))
        if channel not in CHANNELS:
            raise MappingError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
        self.channel = channel
        if not isinstance(skew_seconds, (int, float)) or isinstance(skew_seconds, bool) or not 0 <= skew_seconds <= 60:
            raise MappingError("skew_seconds: a number of seconds from 0 to 60")
        self.skew = int(skew_seconds)
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise MappingError("delimiter: one character")
        self.delimiter = delimiter
        self.outcomes: dict[str, tuple[str, str | None]] = {}  # value -> (kind, flowed_out reason)
        for kind, values in (outcomes or {}).items():
            if kind == "flowed_out":
                if not isinstance(values, dict) or not set(values) <= set(FLOW_REASONS):
                    raise MappingError(f"outcomes.flowed_out: a map from reason ({', '.join(FLOW_REASONS)}) to values")
                pairs = [(v, ("flowed_out", reason)) for reason, vs in values.items() for v in _listed(vs, kind)]
            elif kind in ("answered", "abandoned", "never_queued"):
                pairs = [(v, (kind, None)) for v in _listed(values, kind)]
            else:
                raise MappingError(f"outcomes: unknown kind {kind!r} (answered, abandoned, flowed_out, never_queued)")
            for value, meaning in pairs:
                if value in self.outcomes and self.outcomes[value] != meaning:
                    raise MappingError(f"outcomes: {value!r} is listed twice")
                self.outcomes[value] = meaning
        if not any(k == "answered" for k, _ in self.outcomes.values()):
            raise MappingError("outcomes: list at least the value(s) meaning answered")

    @classmethod
    def from_dict(cls, data: object) -> "Mapping":
        if not isinstance(data, dict):
            raise MappingError("the mapping must be a YAML map with at least columns: and outcomes:")
        known = {"columns", "outcomes", "time_zone", "time_format", "date_format", "none", "channel",
                 "skew_seconds", "delimiter"}
        unknown = set(data) - known
        if unknown:
            raise MappingError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (known: {', '.join(sorted(known))})")
        if not isinstance(data.get("columns"), dict) or not isinstance(data.get("outcomes"), dict):
            raise MappingError("columns: and outcomes: must both be maps")
        none = data.get("none")
        if none is not None and not isinstance(none, list):
            raise MappingError("none: a list of values meaning 'no value' (e.g. ['', '0:00:00'])")
        kw = {k: data[k] for k in ("time_zone", "time_format", "date_format", "channel", "skew_seconds", "delimiter")
              if k in data}
        for k in ("time_zone", "time_format", "date_format", "channel"):
            if k in kw and not isinstance(kw[k], str):
                raise MappingError(f"{k}: must be text")
        return cls(data["columns"], data["outcomes"], none=none, **kw)


def _listed(values: object, kind: str) -> list[str]:
    if isinstance(values, (str, int)):
        values = [values]
    if not isinstance(values, list) or not values:
        raise MappingError(f"outcomes.{kind}: a value or a list of values")
    return [str(v).strip() for v in values]


class RowMapper:
    """Maps rows of one file (after `bind(header)`) to contract events; `tally` says what was done."""

    def __init__(self, mapping: Mapping, header: list[str]) -> None:
        self.m = mapping
        self.tally = Tally()
        names = [h.strip() for h in header]
        self.index: dict[str, int] = {}
        for key, column in mapping.columns.items():
            if column not in names:
                raise MappingError(f"column {column!r} (for {key}) is not in the file's header: "
                                   f"{', '.join(repr(n) for n in names)}")
            self.index[key] = names.index(column)
        self.last_arrival = 0  # latest arrival read (UTC epoch seconds): how far the rows have moved
        self._offsets: dict[int, int] = {}  # local hour -> the zone's offset then
        self._day_offsets: dict[int, int] = {}  # local day -> the offset all that day and the next, or _VARIES
        self._has_date = "arrival_date" in self.index
        self._dated = "%Y" in mapping.time_format or "%y" in mapping.time_format
        # Where each mapped field is in a row; a field not mapped reads the empty cell added at `width`.
        self.width = len(names)
        self._at = {key: self.index.get(key, self.width) for key in COLUMNS}
        self._time_at = [(slot, key, self.index[key]) for slot, key in enumerate(TIME_COLUMNS) if key in self.index]
        self._fields = tuple(self._at[k] for k in ("contact_id", "outcome", "queue", "agent", "customer_id", "channel",
                                                   "arrival_date"))
        self._cells: dict[str, int] = {}  # raw time cell -> _cell(it)
        self._skews: dict[tuple[str, str], str] = {}  # (column, previous column) -> its note in the tally
        self._days: dict[str, int] = {}
        self._quoted: dict[str, str] = {}  # queue or agent id -> it as a JSON string
        self._hms = getattr(mapping.time_match, "__self__").groupindex == {"H": 1, "M": 2, "S": 3}

    # ------------------------------------------------------------------------------------------ times

    def _local_day(self, text: str) -> int | None:
        """A date (arrival_date column) to its day number since 1970-01-01."""
        day = self._days.get(text)
        if day is None:
            match = self.m.date_match
            g = match(text) if match is not None else None  # a date column is matched with date_format
            if g is None:
                return None
            try:
                day = date(*_ymd(g.groupdict())).toordinal() - _EPOCH_ORDINAL
            except ValueError:
                return None
            if len(self._days) > 4096:
                self._days.clear()
            self._days[text] = day
        return day

    def _parse_time(self, text: str) -> int | None:
        """Seconds of the day, or naive seconds since 1970 when the format has a date; None if unreadable."""
        g = self.m.time_match(text)
        if g is None:
            return None
        if self._hms:  # "%H:%M:%S", the usual time of day
            h, mi, s = int(g[1]), int(g[2]), int(g[3])
            return None if h > 23 or mi > 59 or s > 59 else h * 3600 + mi * 60 + s
        d = g.groupdict()
        h = int(d["H"]) if d.get("H") is not None else int(d.get("I") or 0) % 12 + (12 if (d.get("p") or "").lower() == "pm" else 0)
        mi, s = int(d.get("M") or 0), int(d.get("S") or 0)
        if h > 23 or mi > 59 or s > 59:
            return None
        t = h * 3600 + mi * 60 + s
        if self._dated:
            try:
                return (date(*_ymd(d)).toordinal() - _EPOCH_ORDINAL) * 86400 + t
            except ValueError:
                return None
        return t

    def _day_offset(self, day: int) -> int:
        """The zone's offset (seconds) if it is the same every hour of local `day` and the next, else
        _VARIES (a change of summer time, or dates the zone cannot say)."""
        try:
            offsets = {local - self._utc(local) for local in range(day * 86400, (day + 2) * 86400, 3600)}
        except (OverflowError, ValueError):
            offsets = set()
        off = offsets.pop() if len(offsets) == 1 else _VARIES
        if len(self._day_offsets) > 4096:
            self._day_offsets.clear()
        self._day_offsets[day] = off
        return off

    def _utc(self, local: int) -> int:
        if self.m.utc:
            return local
        key = local // 3600
        off = self._offsets.get(key)
        if off is None:
            dt = datetime(1970, 1, 1) + timedelta(seconds=key * 3600)
            off = int((dt.replace(tzinfo=self.m.tz).utcoffset() or timedelta()).total_seconds())
            if len(self._offsets) > 65536:
                self._offsets.clear()
            self._offsets[key] = off
        return local - off

    # ------------------------------------------------------------------------------------------ rows

    def _cell(self, text: str) -> int:
        """A time cell as read, cached by its raw text: local seconds (of the day; since 1970 when the
        format has a date), _NONE_CELL or _BAD_CELL."""
        stripped = text.strip()
        if stripped in self.m.none:
            t = _NONE_CELL
        else:
            parsed = self._parse_time(stripped)
            t = _BAD_CELL if parsed is None else parsed
        if len(self._cells) > 200_000:
            self._cells.clear()
        self._cells[text] = t
        return t

    def prefill_times(self) -> None:
        """Put every `HH:MM:SS` time of day in the cache of time cells, as `_cell` reads them, when
        the format is `%H:%M:%S` (~30 ms): worker processes forked afterwards share them instead of
        each parsing the ~86,000 a long export holds (~2 us each)."""
        if self._dated or self.m.time_format != "%H:%M:%S" or not self._hms:
            return
        none, cells = self.m.none, self._cells
        if len(cells) > 200_000 - 86_400:
            return
        for h in range(24):
            for mi in range(60):
                prefix, base = f"{h:02d}:{mi:02d}:", h * 3600 + mi * 60
                for s, ss in enumerate(_TWO_DIGITS):
                    text = prefix + ss
                    cells[text] = _NONE_CELL if text in none else base + s

    def map_row(self, row: list[str]) -> list[dict]:
        """The events of one call (none when the row is skipped; the tally says why)."""
        return [orjson.loads(line) for _, line in self.map_row_lines(row)]

    def map_row_lines(self, row: list[str]) -> list[tuple[int, str]]:
        """The events of one call as (epoch second, JSON line) pairs: what `kpi ingest csv` writes,
        byte for byte what `orjson.dumps(event, option=OPT_APPEND_NEWLINE)` gives of each event of
        `map_row` (which parses these lines)."""
        tally, m = self.tally, self.m
        tally.read += 1
        none, width = m.none, self.width
        n = len(row)
        if n == width:  # the empty cell that a field not mapped reads
            row = row + _PAD
        elif n != width + 1:  # pad a short row (missing fields are none) plus the empty cell
            row = (row + [""] * (width + 1 - n))[:width] + [""] if n <= width else row[:width] + [""]
        i_contact, i_outcome, i_queue, i_agent, i_customer, i_channel, i_date = self._fields
        contact = row[i_contact].strip()
        if contact in none:
            return self._skip("missing contact id")
        outcome_text: str | None = row[i_outcome].strip()
        if outcome_text in none:
            outcome_text = None
        queue: str | None = row[i_queue].strip()
        if queue in none:
            queue = None
        agent: str | None = row[i_agent].strip()
        if agent in none:
            agent = None
        customer = row[i_customer].strip()
        if customer in none:
            customer = contact
        if len(contact) > MAX_ID or len(customer) > MAX_ID or len(queue or "") > MAX_ID or len(agent or "") > MAX_ID:
            return self._skip("identifier over 200 characters")
        channel = row[i_channel].strip()
        if channel in none:
            channel = m.channel
        elif channel not in CHANNELS:
            return self._skip("unknown channel")
        day = None
        if self._has_date:
            text = row[i_date].strip()
            if text in none:
                return self._skip("missing arrival date")
            day = self._days.get(text)
            if day is None:
                day = self._local_day(text)
                if day is None:
                    return self._skip("unreadable arrival date")
        # Local seconds of the row's day (a time of day is added to it), and the zone's offset when it
        # is the same all that day and the next (a time after midnight is on the next): a local time
        # is then made UTC by one subtraction, not a look-up per hour.
        row_off: int | None
        if self._dated:
            day_start, row_off = 0, 0 if m.utc else _VARIES
        else:
            assert day is not None  # a time of day: Mapping requires a date column
            day_start = day * 86400
            row_off = 0 if m.utc else self._day_offsets.get(day)
            if row_off is None:
                row_off = self._day_offset(day)
        # Times in call order; a time of day earlier than the one before it crossed midnight.
        utc: list[int | None] = [None, None, None, None, None, None]  # by position in TIME_COLUMNS
        prev_key, prev = "", None
        cells, offsets, skew = self._cells, self._offsets, m.skew
        for slot, key, i in self._time_at:
            t = cells.get(row[i])
            if t is None:
                t = self._cell(row[i])
            if t <= _NONE_CELL:
                if t == _NONE_CELL:
                    continue
                return self._skip(f"unreadable time in {key}")
            t += day_start
            if prev is not None and t < prev:
                if day is not None and t < prev - 43_200:
                    t += 86_400
                    tally.adjusted[_MIDNIGHT[key]] += 1
                elif prev - t <= skew:
                    note = self._skews.get((key, prev_key))
                    if note is None:
                        note = self._skews[(key, prev_key)] = \
                            f"{key} up to {skew} s before {prev_key} (clock skew): moved to it"
                    tally.adjusted[note] += 1
                    t = prev
                else:
                    return self._skip(f"{key} before {prev_key}")
            prev_key, prev = key, t
            if row_off != _VARIES:
                t -= row_off
            else:
                off = offsets.get(t // 3600)
                t = t - off if off is not None else self._utc(t)
            if not MIN_EPOCH <= t < MAX_EPOCH:
                return self._skip("time out of range")
            utc[slot] = t
        arrival, start, exit_, service_start, end, wrapup_end = utc
        if arrival is None:
            return self._skip("missing arrival")
        if arrival > self.last_arrival:
            self.last_arrival = arrival
        base = line_id("csv-", "\x1f".join(row))
        stamps = STAMPS
        # Each event rendered as orjson renders its dict (keys in this order, no spaces): the text the
        # sink writes, made here by one f-string instead of a dict and an encoder call.
        c_json = _plain(contact)
        created = (arrival, f'{{"event_id":"{base}:c","type":"contact.created","ts":"{stamps.get(arrival) or rfc3339(arrival)}",'
                            f'"contact_id":{c_json},"channel":{_CHANNEL_JSON[channel]},'
                            f'"customer_id":{c_json if customer is contact else _plain(customer)}}}\n')
        meaning = m.outcomes.get(outcome_text) if outcome_text is not None else None
        if queue is None or (meaning is not None and meaning[0] == "never_queued"):
            tally.adjusted["never queued (ended in the voice menu): contact.created only"] += 1
            return self._done([created])
        if outcome_text is None:
            return self._skip("missing outcome")
        if meaning is None:
            return self._skip("unknown outcome value")
        kind, reason = meaning
        if start is None:
            start = arrival
        quoted = self._quoted
        q_json = quoted.get(queue) or self._quote(queue)
        out = [created, (start, f'{{"event_id":"{base}:q","type":"contact.queued","ts":"{stamps.get(start) or rfc3339(start)}",'
                                f'"contact_id":{c_json},"queue_id":{q_json}}}\n')]
        if kind == "answered":
            if agent is None:
                return self._skip("answered without an agent")
            answer = exit_ if exit_ is not None else service_start
            if answer is None:
                return self._skip("answered without queue exit or service start")
            a_json = quoted.get(agent) or self._quote(agent)
            out.append((answer, f'{{"event_id":"{base}:e","type":"contact.answered","ts":"{stamps.get(answer) or rfc3339(answer)}",'
                                f'"contact_id":{c_json},"queue_id":{q_json},"agent_id":{a_json}}}\n'))
            if end is None:
                tally.adjusted["answered without service end: no wrap-up events (the leg stays open)"] += 1
            else:
                if wrapup_end is None:
                    wrapup_end = end
                out.append((end, f'{{"event_id":"{base}:w","type":"contact.wrapup_started","ts":"{stamps.get(end) or rfc3339(end)}",'
                                 f'"contact_id":{c_json},"agent_id":{a_json}}}\n'))
                out.append((wrapup_end, f'{{"event_id":"{base}:x","type":"contact.wrapup_ended",'
                                        f'"ts":"{stamps.get(wrapup_end) or rfc3339(wrapup_end)}",'
                                        f'"contact_id":{c_json},"agent_id":{a_json}}}\n'))
        elif kind == "abandoned":
            if exit_ is None:
                exit_ = start
                tally.adjusted["abandoned without queue exit: a zero-second abandon"] += 1
            elif exit_ == start:
                tally.adjusted["zero-second abandon kept (a short abandon)"] += 1
            out.append((exit_, f'{{"event_id":"{base}:e","type":"contact.abandoned","ts":"{stamps.get(exit_) or rfc3339(exit_)}",'
                               f'"contact_id":{c_json},"queue_id":{q_json}}}\n'))
        else:
            if exit_ is None:
                return self._skip("flowed out without queue exit")
            out.append((exit_, f'{{"event_id":"{base}:e","type":"contact.flowed_out","ts":"{stamps.get(exit_) or rfc3339(exit_)}",'
                               f'"contact_id":{c_json},"queue_id":{q_json},"reason":"{reason}"}}\n'))
        tally.contacts += 1  # self._done(out), inline
        tally.events += len(out)
        return out

    def _quote(self, text: str) -> str:
        """A queue or agent id as a JSON string, kept: a file has few of them."""
        if len(self._quoted) > 65536:
            self._quoted.clear()
        q = self._quoted[text] = _plain(text)
        return q

    def _skip(self, reason: str) -> list:
        self.tally.skipped[reason] += 1
        return []

    def _done(self, out: list[tuple[int, str]]) -> list[tuple[int, str]]:
        self.tally.contacts += 1
        self.tally.events += len(out)
        return out


def _plain(text: str) -> str:
    """`text` as a JSON string, as orjson writes it: quoted as is when it has nothing to escape
    (printable ASCII without `"` or `\\`), else by orjson itself (escapes, UTF-8 as is)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return orjson.dumps(text).decode()


_CHANNEL_JSON = {c: _plain(c) for c in CHANNELS}
_TWO_DIGITS = tuple(f"{s:02d}" for s in range(60))


def _ymd(d: dict) -> tuple[int, int, int]:
    year = int(d["Y"]) if d.get("Y") is not None else 2000 + int(d.get("y") or 0)
    return year, int(d.get("m") or 1), int(d.get("d") or 1)
