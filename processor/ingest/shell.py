"""`kpi ingest asterisk` and `kpi ingest csv`: files in, contract events out (the input topic, or a
JSON-lines file). The mapping itself is in asterisk.py and csvlog.py; this reads, follows, sends,
checkpoints and reports. Errors are said as every `kpi` command says them (processor/errors.py):
one line (two with a hint) on stderr, exit status 2 for bad input, 1 for a broker out of reach."""
from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import io
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import orjson

from ..errors import CommandError
from .asterisk import CONTRACT_REASONS, QueueLogMapper
from .common import Reorder, Tally
from .follow import Stream, Tail, load_checkpoint, save_checkpoint
from .pool import BlockReorder, default_workers, mapped_blocks

BATCH_LINES = 20_000  # lines mapped before the events are sent and the checkpoint is written


# ---------------------------------------------------------------------------------------- sinks

def write_json_lines(fh, events: list[dict]) -> None:
    """The events as JSON lines, one `orjson.dumps` call each, written as made: each result is freed
    before the next is made, so orjson reuses one buffer (kept results cost ~2 us a call, a list of
    them too; one call over the whole list saves the calls but not the work of putting the newlines
    in between: both measured slower)."""
    dumps, newline, write = orjson.dumps, orjson.OPT_APPEND_NEWLINE, fh.write
    for e in events:
        write(dumps(e, option=newline))


class FileSink:
    """JSON lines to a file (appended to when following: a restart adds, never rewrites).

    When following, each batch is on disk (fsync) before the checkpoint says it was sent; a file
    read once has no checkpoint, so its output is made durable once, when it is closed (not once
    per batch: each fsync waits for the disk)."""

    def __init__(self, path: str, append: bool) -> None:
        self.where = path
        self.sync_batches = append
        try:
            self.fh = open(path, "ab" if append else "wb")
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}") from None

    def send(self, events: list[dict]) -> None:
        if events:
            write_json_lines(self.fh, events)
        self._sent()

    def send_lines(self, lines: list[str]) -> None:
        """Events already rendered as JSON lines (a piece may hold several), written in one piece."""
        self.fh.write("".join(lines).encode())
        self._sent()

    def _sent(self) -> None:
        self.fh.flush()
        if self.sync_batches:
            os.fsync(self.fh.fileno())

    def close(self) -> None:
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        finally:
            self.fh.close()


class KafkaSink:
    """The input topic, through the same producer as `kpi produce` and `kpi simulate` (cli._produce):
    keyed as the contract says, acks=all, flushed before send() returns."""

    def __init__(self, args) -> None:
        from ..config import ConfigError, load_settings

        try:
            self.settings = load_settings(args.config)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        self.bootstrap, self.topic = args.bootstrap, args.topic
        self.where = f"topic {args.topic or self.settings.kafka.input_topic} on " \
                     f"{args.bootstrap or self.settings.kafka.bootstrap}"

    def send(self, events: list[dict]) -> None:
        if not events:
            return
        from ..cli import _produce

        try:
            asyncio.run(_produce(events, self.settings, self.bootstrap, self.topic, 0.0))
        except CommandError:  # the broker cannot be reached, said as `kpi produce` says it (exit 1)
            raise
        except Exception as exc:  # aiokafka's errors while sending, whatever their class
            raise CommandError(f"cannot produce to {self.where}: {type(exc).__name__}: {exc}", 1) from None

    def send_lines(self, lines: list[str]) -> None:
        """Events rendered as JSON lines (a piece may hold several), sent as their dicts (the
        producer encodes and keys each)."""
        self.send([orjson.loads(line) for piece in lines for line in piece.split("\n") if line])

    def close(self) -> None:
        pass


def _sink(args, append: bool):
    return FileSink(args.output, append) if args.output else KafkaSink(args)


# ---------------------------------------------------------------------------------------- asterisk

def _exit_keys(pairs: list[str]) -> dict[str, str]:
    keys = {}
    for pair in pairs or []:
        key, sep, reason = pair.partition("=")
        if not sep or not key or reason not in CONTRACT_REASONS:
            raise CommandError(f"--exit-key {pair!r}: expected DIGIT=REASON with REASON one of {', '.join(CONTRACT_REASONS)}")
        keys[key] = reason
    return keys


class _Stop:
    """SIGTERM and Ctrl-C end a follow loop between two batches (what was read is sent first)."""

    def __init__(self) -> None:
        self.asked = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._ask)

    def _ask(self, signum, frame) -> None:
        self.asked = True


def _deliver(sink, events: list[dict], retry: bool, stop: "_Stop | None") -> None:
    """Send a batch. A follower waits out a broker that is down (the batch, and the checkpoint,
    wait with it); a one-shot run stops with the one-line error."""
    while True:
        try:
            sink.send(events)
            return
        except CommandError as exc:
            if not retry or (stop is not None and stop.asked):
                raise
            print(f"kpi ingest asterisk: {exc}; retrying in 5 s", file=sys.stderr, flush=True)
            time.sleep(5)


def cmd_asterisk(args) -> int:
    if args.follow and args.queue_log == "-":
        raise CommandError("--follow reads a file; standard input is read as it comes without it")
    if args.checkpoint and not args.follow:
        raise CommandError("--checkpoint goes with --follow (a file read once needs none)")
    from zoneinfo import ZoneInfoNotFoundError
    checkpoint = Path(args.checkpoint or f"{Path(args.queue_log).name}.kpi-ingest.json") if args.follow else None
    try:
        saved = load_checkpoint(checkpoint) if checkpoint else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if saved and saved.get("source") != args.queue_log:
        raise CommandError(f"checkpoint {checkpoint} is of {saved.get('source')}, not {args.queue_log}: "
                           "give another --checkpoint, or remove it to start from the beginning")
    try:
        mapper = QueueLogMapper(time_zone=args.time_zone, exit_keys=_exit_keys(args.exit_key),
                                state=saved.get("state") if saved else None)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CommandError(f"{exc}") from None
    source: Tail | Stream
    if args.queue_log == "-":
        source = Stream(sys.stdin.fileno(), args.poll)
    else:
        try:
            source = Tail(args.queue_log, (saved["dev"], saved["ino"], saved["offset"]) if saved else None)
        except OSError as exc:
            raise CommandError(f"cannot read {args.queue_log}: {exc.strerror}") from None
    sink = _sink(args, append=bool(args.follow))
    print(f"kpi ingest asterisk: {args.queue_log} -> {sink.where}"
          + (f"; checkpoint {checkpoint}" + (" (resuming)" if saved else "") if checkpoint else ""),
          file=sys.stderr, flush=True)
    stop = _Stop() if args.follow or args.queue_log == "-" else None
    started, last_note, n_notes = time.monotonic(), 0.0, 0
    live = args.follow or args.queue_log == "-"
    collecting = gc.isenabled()
    if not live:  # a file read once: its lines and events make no reference cycles (as in cmd_csv)
        gc.disable()
    try:
        while True:
            events: list[dict] = []
            moved = drained = False
            while len(events) < BATCH_LINES:
                lines = source.read()
                if not lines:
                    drained = True
                    break
                moved = True
                for raw in lines:
                    events.extend(mapper.map_line(raw.decode("utf-8", "replace")))
            finished = drained and (source.eof if isinstance(source, Stream) else not args.follow)
            if finished and isinstance(source, Tail):
                for raw in source.final():  # a last line without its newline
                    moved = True
                    events.extend(mapper.map_line(raw.decode("utf-8", "replace")))
            _deliver(sink, events, retry=args.follow, stop=stop)
            if checkpoint is not None and moved and isinstance(source, Tail):  # --follow: a Tail
                save_checkpoint(checkpoint, source.position(), args.queue_log, mapper.state())
            notes = getattr(source, "notes", [])
            for note in notes[n_notes:]:
                print(f"kpi ingest asterisk: {note}", file=sys.stderr, flush=True)
            n_notes = len(notes)
            if finished or (stop is not None and stop.asked):
                break
            now = time.monotonic()
            if live and now - last_note >= 10:
                last_note = now
                t = mapper.tally
                print(f"  {t.read:,} lines read, {t.events:,} events sent", file=sys.stderr, flush=True)
            if drained and isinstance(source, Tail):
                time.sleep(args.poll)
    finally:
        if collecting:
            gc.enable()
        sink.close()
        if isinstance(source, Tail):
            source.close()
    elapsed = time.monotonic() - started
    for line in mapper.tally.lines("lines"):
        print(line, file=sys.stderr)
    print(f"events sent to {sink.where} in {elapsed:.1f} s", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------- csv

def csv_rows(lines, delimiter: str):
    """The rows `csv.reader(lines, delimiter=delimiter)` gives, a line without a quote character
    split by `str.split` (what the reader does with one, at a third of its cost), any other through
    the csv module (a quoted field may span lines: the reader takes them from the same iterator)."""
    lines = iter(lines)
    if delimiter in '"\r\n':
        yield from csv.reader(lines, delimiter=delimiter)
        return
    limit = csv.field_size_limit()  # a longer line goes through the reader, which refuses the field
    for line in lines:
        if '"' in line or len(line) > limit:
            yield next(csv.reader(itertools.chain((line,), lines), delimiter=delimiter))
        else:
            line = line.rstrip("\r\n")
            yield line.split(delimiter) if line else []


READ_BLOCK = 1 << 18  # characters of lines read (and mapped by a worker) at a time: ~2,700 rows of an export


def csv_blocks(fh, delimiter: str, block: int = READ_BLOCK, group: int = 1):
    """The rest of the file in blocks, each either a text of whole lines without a quote character or
    a lone carriage return (`split_block` gives its rows: two `str.split` over the block, a fraction
    of the cost of a line at a time), or a list of up to `group` rows from `csv_rows`: from the first
    block that has one of those, the rest of the file goes through the reader (a quoted field may
    span lines)."""
    limit = csv.field_size_limit()
    while True:
        lines = fh.readlines(block)
        if not lines:
            return
        text = "".join(lines)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if delimiter in '"\r\n' or '"' in text or "\r" in text or (len(text) > limit and max(map(len, lines)) > limit):
            rows: list[list[str]] = []
            try:
                for row in csv_rows(itertools.chain(lines, fh), delimiter):
                    if row:
                        rows.append(row)
                        if len(rows) >= group:
                            yield rows
                            rows = []
            except (csv.Error, UnicodeDecodeError):
                if rows:  # the rows read before the unreadable one are mapped first, as one at a time
                    yield rows
                raise
            if rows:
                yield rows
            return
        yield text


def split_block(block, delimiter: str) -> list[list[str]]:
    """The rows of a block of `csv_blocks` (less the empty lines, which have no row)."""
    if isinstance(block, str):
        return [line.split(delimiter) for line in block.split("\n") if line]
    return block


def csv_row_batches(fh, delimiter: str, block: int = READ_BLOCK):
    """The rows `csv_rows(fh, delimiter)` gives (less the empty ones), in batches: a block of ~`block`
    characters at a time while the file has no quote character (`csv_blocks`), then a row per batch
    (an unreadable row is then said with its number)."""
    for b in csv_blocks(fh, delimiter, block):
        yield split_block(b, delimiter)


POOL_GROUP = 2_000  # rows a worker maps at a time once the file has a quoted field


def _size(fh) -> int:
    try:
        return os.fstat(fh.fileno()).st_size
    except (OSError, ValueError, io.UnsupportedOperation):
        return 0


def _add(tally: Tally, part: Tally) -> None:
    tally.read += part.read
    tally.events += part.events
    tally.contacts += part.contacts
    tally.skipped.update(part.skipped)
    tally.adjusted.update(part.adjusted)


def _interrupt(signum, frame) -> None:
    """SIGTERM, while worker processes map: stopped as Ctrl-C stops it (the pool with it)."""
    raise KeyboardInterrupt


def _pooled(fh, delimiter: str, rows, workers: int, window: int, sink) -> None:
    """The rest of the file mapped by `workers` processes (pool.py): the same lines, output batches
    and progress lines as the single-process loop of cmd_csv. `rows.tally` ends as its tally."""
    tally = rows.tally
    out: list[str] = []
    held = 0

    def emit(texts: list[str], n: int, read: int) -> None:  # what the single-process loop does on a release
        nonlocal out, held
        out += texts
        held += n
        if held >= 50_000:
            sink.send_lines(out)
            out, held = [], 0
            print(f"  {read:,} rows read", file=sys.stderr, flush=True)

    order = BlockReorder(window, emit)
    stopping = signal.signal(signal.SIGTERM, _interrupt)
    rows.prefill_times()  # before the fork: each worker would parse them again
    blocks = csv_blocks(fh, delimiter, READ_BLOCK, POOL_GROUP)
    results = mapped_blocks(blocks, (rows, delimiter, split_block, window), workers)
    try:
        for block, (part, segments, runs, latest) in results:
            if order.take(part.read, segments, runs, latest):
                _add(tally, part)
            else:  # a row out of order by more than the window: this block row by row, here
                rows.last_arrival = order.now
                for row in split_block(block, delimiter):
                    order.push_row(rows.map_row_lines(row), rows.last_arrival)
    finally:
        results.close()  # the pool stopped (terminated if the run did not finish)
        signal.signal(signal.SIGTERM, stopping)
    texts, _ = order.drain()
    sink.send_lines(out + texts)


def cmd_csv(args) -> int:
    import yaml  # type: ignore[import-untyped]  # (no stubs installed)

    from .csvlog import Mapping, MappingError, RowMapper

    try:
        text = Path(args.mapping).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read mapping {args.mapping}: {exc.strerror}") from None
    try:
        mapping = Mapping.from_dict(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise CommandError(f"mapping {args.mapping} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
    except MappingError as exc:
        raise CommandError(f"mapping {args.mapping}: {exc}") from None
    try:
        fh = (io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="") if args.file == "-"
              else open(args.file, encoding="utf-8-sig", newline=""))
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    sink = _sink(args, append=False)
    started = time.monotonic()
    try:
        with fh:
            reader = csv_rows(fh, mapping.delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise CommandError(f"{args.file} is empty: no header row") from None
            except UnicodeDecodeError as exc:
                raise CommandError(f"{args.file} is not UTF-8 text: {exc}") from None
            except csv.Error as exc:
                raise CommandError(f"{args.file}: unreadable header row: {exc}") from None
            try:
                rows = RowMapper(mapping, header)
            except MappingError as exc:
                raise CommandError(f"{args.file}: {exc}") from None
            print(f"kpi ingest csv: {args.file} -> {sink.where}", file=sys.stderr, flush=True)
            lines: list[str] = []  # the events as JSON lines (csvlog.RowMapper.map_row_lines)
            order = Reorder(args.reorder_seconds)
            push, map_row = order.push_timed, rows.map_row_lines
            workers = args.workers if args.workers is not None else default_workers()
            parallel = workers > 1 and args.file != "-" and _size(fh) > 2 * READ_BLOCK
            collecting = gc.isenabled()
            gc.disable()  # rows, events and lines make no reference cycles: the collector's passes
            try:           # over the rows and held events were ~10 % of the run
                if not parallel:
                    for batch in csv_row_batches(fh, mapping.delimiter):
                        for row in batch:
                            released = push(map_row(row), rows.last_arrival)
                            if released:
                                lines += released
                                if len(lines) >= 50_000:
                                    sink.send_lines(lines)
                                    lines = []
                                    print(f"  {rows.tally.read:,} rows read", file=sys.stderr, flush=True)
                else:  # rows mapped by worker processes, taken in file order (pool.py)
                    _pooled(fh, mapping.delimiter, rows, workers, args.reorder_seconds, sink)
            except UnicodeDecodeError as exc:
                raise CommandError(f"{args.file} is not UTF-8 text: {exc}") from None
            except csv.Error as exc:
                raise CommandError(f"{args.file}: unreadable at row {rows.tally.read + 2}: {exc}") from None
            finally:
                if collecting:
                    gc.enable()
            if not parallel:
                lines += order.drain()
                sink.send_lines(lines)
    finally:
        sink.close()
    tally: Tally = rows.tally
    for line in tally.lines("rows"):
        print(line, file=sys.stderr)
    print(f"events sent to {sink.where} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------- parser

def _guarded(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except CommandError as exc:
            print(f"kpi ingest {args.source}: {exc}", file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            print(f"kpi ingest {args.source}: interrupted", file=sys.stderr)
            return 130
        except Exception as exc:  # never a traceback for a user (the rule); say what it was
            print(f"kpi ingest {args.source}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return run


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of processes from 1 to 64")
    return n


def _kafka_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", help="write JSON lines here instead of producing to Kafka")
    p.add_argument("--config", help="YAML settings file (Kafka connection, input topic)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the settings')")
    p.add_argument("--topic", help="topic (default: the input topic of the settings)")


def register(sub) -> None:
    """Adds `ingest asterisk` and `ingest csv` to the `kpi` parser's subcommands."""
    ing = sub.add_parser("ingest", help="map a real contact center's logs to contract events (docs/ingest.md)")
    isub = ing.add_subparsers(dest="source", required=True)

    a = isub.add_parser("asterisk", help="Asterisk queue_log to contract events")
    a.add_argument("--queue-log", required=True, metavar="PATH|-", help="the queue_log file, or - for standard input")
    a.add_argument("--follow", action="store_true",
                   help="keep reading what is appended (survives rotation), with a checkpoint of the position")
    a.add_argument("--checkpoint", help="checkpoint file for --follow (default: <queue_log name>.kpi-ingest.json here)")
    a.add_argument("--poll", type=float, default=0.5, help="seconds between looks at the file when it has nothing new")
    a.add_argument("--time-zone", default="UTC",
                   help="zone of date-time stamps (realtime back-ends); epoch stamps are UTC anyway")
    a.add_argument("--exit-key", action="append", metavar="DIGIT=REASON",
                   help="flowed_out reason of an EXITWITHKEY digit (default overflow), e.g. 1=voicemail 2=callback")
    _kafka_options(a)
    a.set_defaults(fn=_guarded(cmd_asterisk))

    c = isub.add_parser("csv", help="per-call CSV export to contract events, with a column mapping")
    c.add_argument("--mapping", required=True, help="mapping YAML (see deploy/config/csv-mapping.example.yaml)")
    c.add_argument("--reorder-seconds", type=int, default=3600,
                   help="rows may be this far out of arrival order; events are sent in event-time order")
    c.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="processes mapping rows of a file (default: one per core, at least 2; 1: this one "
                        "alone). The output is the same whatever N; standard input is read by one")
    c.add_argument("file", metavar="FILE", help="the CSV export (header row first), or - for standard input")
    _kafka_options(c)
    c.set_defaults(fn=_guarded(cmd_csv))
