"""`kpi ingest csv FILE` on several cores: worker processes map numbered blocks of rows, the parent
takes their results strictly in block order and releases them through the same reorder rule as
`common.Reorder`, so the output (and every progress line) is the single-process run's by
construction. Part of the shell; the mapping stays pure (csvlog.RowMapper).

What crosses the pipe is compact: a worker groups its block's rendered lines by minute of event time,
each minute's lines sorted (stably) on their second and joined in one string; the parent holds one
such run per block per minute and, releasing a minute, takes its single run as it is, or merges the
runs of the blocks that share it. This is the single-process reorder when no row of the block
holds an event in a minute the reorder has already released ("late": rows out of arrival order by
more than the window); a block with one is mapped again in the parent, row by row, with the
single-process rule. The release points (hence the output batches and progress lines) are those of
the single-process run: the rows where the reorder's horizon moves, which each worker reports."""
from __future__ import annotations

import bisect
import collections
import gc
import heapq
import multiprocessing
import operator
import os
import queue
import signal
import threading
from typing import Callable, Generator, Iterator

from .common import Tally

_JOB: tuple | None = None  # (RowMapper, delimiter, split_block, window), set in the parent just before the fork
_NEVER = 1 << 62  # a minute after any event
_FIRST = operator.itemgetter(0)


def default_workers() -> int:
    """One worker per core this process may run on, at least 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(2, cores)


def _init() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool, a worker says nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (the parent's, while it runs the pool, raises)
    gc.disable()  # as in the parent: rows, events and lines make no reference cycles


def _map_block(block) -> tuple:
    """(tally, segments, runs, latest arrival) of a block mapped from a fresh tally and a latest
    arrival of 0. segments: (index of the first row, horizon minute, least event minute of its rows)
    for each run of rows with the same horizon (`max(latest - window, 0) // 60`); runs: minute ->
    (seconds, text), its events' lines in order of second (stable: rows' order in a second) and
    joined."""
    assert _JOB is not None
    mapper, delimiter, split, window = _JOB
    mapper.tally = Tally()
    mapper.last_arrival = 0
    map_row = mapper.map_row_lines
    items: list = []  # the block's (second, line) pairs, in the order the rows give them
    starts: list[tuple[int, int, int]] = []  # (first row, horizon, index of its first pair) of each segment
    horizon, latest = -1, -1
    for i, row in enumerate(split(block, delimiter)):
        pairs = map_row(row)
        if mapper.last_arrival != latest:
            latest = mapper.last_arrival
            h = max(latest - window, 0) // 60
            if h != horizon:
                horizon = h
                starts.append((i, h, len(items)))
        items += pairs
    segments = []
    for k, (first, h, lo) in enumerate(starts):
        hi = starts[k + 1][2] if k + 1 < len(starts) else len(items)
        segments.append((first, h, min(items[lo:hi])[0] // 60 if hi > lo else _NEVER))
    items.sort(key=_FIRST)  # stable
    secs = [s for s, _ in items]
    lines = [line for _, line in items]
    runs = {}
    i, n = 0, len(secs)
    while i < n:
        minute = secs[i] // 60
        j = bisect.bisect_left(secs, (minute + 1) * 60, i)
        runs[minute] = (secs[i:j], "".join(lines[i:j]))
        i = j
    return mapper.tally, segments, runs, mapper.last_arrival


def _work(tasks, results, others) -> None:
    """A worker: blocks in, results out, until told to stop (None) or the parent is gone (EOF)."""
    for conn in others:  # the other processes' pipe ends: the parent's end closing is then an EOF here
        conn.close()
    _init()
    try:
        while True:
            block = tasks.recv()
            if block is None:
                return
            try:
                result = _map_block(block)
            except Exception as exc:  # said by the parent in one line, as one process would say it
                result = ("failed", f"{type(exc).__name__}: {exc}")
            results.send(result)
    except (EOFError, BrokenPipeError):
        return


def _result(conn) -> tuple:
    result = conn.recv()
    if result[0] == "failed":
        raise RuntimeError(f"a worker process: {result[1]}")
    return result


def _widen(conn) -> None:
    """A pipe of 1 MiB (Linux; 64 KiB by default): a block's result is written in a few calls."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    except (ImportError, AttributeError, OSError):
        pass


def _feed(tasks: queue.SimpleQueue, pipes) -> None:
    """The parent's thread writing blocks to the workers, in order: a worker's full pipe holds it up,
    never the thread reading results (each side would wait on the other)."""
    try:
        while True:
            item = tasks.get()
            if item is None:
                return
            w, block = item
            pipes[w][0][1].send(block)
    except OSError:  # a worker gone (stopped): the results' side says it
        return


def mapped_blocks(blocks: Iterator, job: tuple, workers: int, depth: int = 2) -> Generator[tuple[object, tuple], None, None]:
    """(block, `_map_block(block)`) for each of `blocks`, in block order, mapped by `workers` forked
    processes, block k by worker k mod `workers`, at most `depth` blocks each in flight (a worker
    descheduled by other load on the host then holds up the others less). An error reading the
    blocks is raised after the results of the blocks read before it (the single-process run maps
    those rows before it meets the error)."""
    global _JOB
    ctx = multiprocessing.get_context("fork")
    pipes = [(ctx.Pipe(duplex=False), ctx.Pipe(duplex=False)) for _ in range(workers)]
    ends = [conn for pair in pipes for pipe in pair for conn in pipe]
    procs = []
    _JOB = job
    try:
        for (task_r, task_w), (result_r, result_w) in pipes:
            for conn in (task_w, result_r):
                _widen(conn)
            proc = ctx.Process(target=_work, args=(task_r, result_w, [c for c in ends if c not in (task_r, result_w)]),
                               daemon=True)
            proc.start()
            procs.append(proc)
    finally:
        _JOB = None
    for (task_r, _), (_, result_w) in pipes:
        task_r.close()
        result_w.close()
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    feeder = threading.Thread(target=_feed, args=(tasks, pipes), name="kpi-ingest-feed", daemon=True)
    feeder.start()
    pending: collections.deque = collections.deque()  # (block, worker) in block order
    ok = False
    try:
        error: Exception | None = None
        k = 0
        try:
            for block in blocks:
                w = k % workers
                tasks.put((w, block))
                pending.append((block, w))
                k += 1
                if len(pending) >= depth * workers:
                    done, v = pending.popleft()
                    yield done, _result(pipes[v][1][0])
        except Exception as exc:  # reading (bad UTF-8, an unreadable row): what was read first, then it
            error = exc
        while pending:
            done, v = pending.popleft()
            yield done, _result(pipes[v][1][0])
        if error is not None:
            raise error
        ok = True
    finally:
        if ok:
            for w in range(workers):
                tasks.put((w, None))  # a worker's stop
        else:  # an error, Ctrl-C, or the consumer gave up: the workers are stopped where they are
            for proc in procs:
                proc.terminate()
        tasks.put(None)
        for proc in procs:
            proc.join()
        feeder.join(5)
        for (_, task_w), (result_r, _) in pipes:
            task_w.close()
            result_r.close()


class BlockReorder:
    """`common.Reorder` over the results of `_map_block`, in block order, with the same releases:
    `emit(texts, n_lines, rows_read)` is called where the single-process run releases events (after
    the row numbered `rows_read`), with the same lines."""

    def __init__(self, window: int, emit: Callable[[list[str], int, int], None]) -> None:
        self.window = window
        self.emit = emit
        self.now = 0  # latest arrival of the rows taken
        self.read = 0  # rows taken
        self._held: dict[int, list] = {}  # minute -> its runs [(seconds, text)], in block order
        self._minutes: list[int] = []  # heap of the held minutes

    def take(self, rows: int, segments, runs: dict, latest: int) -> bool:
        """A block's result (its number of rows, then as `_map_block` gives them); False (nothing
        taken) if one of its rows is late: map them again and give each to `push_row`."""
        base = max(self.now - self.window, 0) // 60
        for _, h, least in segments:
            if least < max(h, base):
                return False
        held, minutes = self._held, self._minutes
        for minute, run in runs.items():
            bucket = held.get(minute)
            if bucket is None:
                held[minute] = [run]
                heapq.heappush(minutes, minute)
            else:
                bucket.append(run)
        read = self.read
        for first, h, _ in segments:
            self._release(max(h, base), read + first + 1)
        self.read = read + rows
        if latest > self.now:
            self.now = latest
        return True

    def push_row(self, pairs: list, latest: int) -> None:
        """One row's (second, line) pairs and the latest arrival after it, as `Reorder.push_timed`
        takes them."""
        self.read += 1
        held, minutes = self._held, self._minutes
        for sec, line in pairs:
            minute = sec // 60
            bucket = held.get(minute)
            if bucket is None:
                held[minute] = [([sec], line)]
                heapq.heappush(minutes, minute)
            else:
                bucket.append(([sec], line))
        if latest > self.now:
            self.now = latest
        self._release(max(self.now - self.window, 0) // 60, self.read)

    def _release(self, horizon: int, read: int) -> None:
        minutes = self._minutes
        if not minutes or minutes[0] >= horizon:
            return
        texts, n = [], 0
        while minutes and minutes[0] < horizon:
            text, k = self._text(heapq.heappop(minutes))
            texts.append(text)
            n += k
        self.emit(texts, n, read)

    def _text(self, minute: int) -> tuple[str, int]:
        runs = self._held.pop(minute)
        if len(runs) == 1:
            secs, text = runs[0]
            return text, len(secs)
        items: list = []
        for secs, text in runs:
            items += zip(secs, text.split("\n"))  # (the text's last "\n" gives a piece zip leaves)
        items.sort(key=_FIRST)  # stable: runs in block order, each in push order for a second
        return "\n".join([line for _, line in items]) + "\n", len(items)

    def drain(self) -> tuple[list[str], int]:
        """Everything still held, in order (at the end of the file)."""
        texts, n = [], 0
        while self._minutes:
            text, k = self._text(heapq.heappop(self._minutes))
            texts.append(text)
            n += k
        return texts, n
