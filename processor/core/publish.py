"""What every rollup book shares: a watermark clock over upstream partitions, and versioned publication.

`SourceClock` is the stage clock (minimum stream time over the active upstream partitions).
`Publisher` publishes one record per key once the watermark passes the key's due time (version 1),
and again with version + 1 whenever a later change alters a published record (compared by digest,
so a change that leaves the record equal publishes nothing).
"""
from __future__ import annotations

import hashlib
import heapq
import json
from typing import Any, Callable


def digest(record: dict) -> str:
    body = json.dumps({k: v for k, v in record.items() if k != "version"}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(body.encode(), digest_size=8).hexdigest()


def record_identity(rec: dict) -> tuple:
    """What identifies a rollup record of any kind: consumers keep its highest version. The message key
    on the rollup topic is these parts joined by "|" (queue_interval's has no kind: unchanged since the
    first release)."""
    kind = rec["kind"]
    if kind == "queue_interval":
        return (rec["queue_id"], rec["channel"], rec["interval_start"])
    if kind == "agent_interval":
        return (kind, rec["agent_id"], rec["interval_start"])
    if kind == "retention_day":
        return (kind, rec["queue_id"], rec["channel"], rec["interval_start"], rec["horizon_days"])
    return (kind, rec["queue_id"], rec["channel"], rec["interval_start"])


def publish_changed(changed: set, work: list, publish: Callable[[Any], dict | None], out: list[dict],
                    budget: int) -> int:
    """The keys of `changed` published in key order (records appended to `out`), at most `budget` of
    them (-1: all); returns the budget left. `work` keeps the sorted keys of a slice between calls, so a
    sliced publication resumes where it stopped; a key forgotten since the slice began is skipped."""
    while changed and budget != 0:
        if not work:
            work.extend(sorted(changed, reverse=True))
        while work and budget != 0:
            key = work.pop()
            if key not in changed:
                continue  # forgotten since the slice began
            changed.discard(key)
            budget -= 1
            rec = publish(key)
            if rec is not None:
                out.append(rec)
    return budget


class SourceClock:
    """Stream time of each upstream partition; the book's clock is the minimum over the active ones.

    As in Flink and Kafka Streams: a partition still replaying a backlog holds intervals open
    instead of being overtaken by a faster one; an idle partition (nothing to read) stops holding
    them back; until every upstream partition has reported once (after a start) the clock stays put.
    """

    def init_clock(self) -> None:
        self.stream_ms = 0    # watermark clock: closes records and expires state
        self.latest_ms = 0    # newest stream time of any upstream partition: the live clock
        self.sources: dict[int, int] = {}
        self.heard: set[int] = set()
        self.expected_sources = 1

    def observe(self, stream_ms: int, source: int = 0, idle: bool = False) -> None:
        self.heard.add(source)
        if idle:
            self.sources.pop(source, None)
        elif stream_ms > self.sources.get(source, -1):  # a source at 0 (no clock yet) holds the clock at 0
            self.sources[source] = stream_ms
        if stream_ms > self.latest_ms:
            self.latest_ms = stream_ms
        if len(self.heard) < self.expected_sources:
            return
        low = min(self.sources.values()) if self.sources else self.latest_ms
        if low > self.stream_ms:
            self.stream_ms = low


Key = tuple
_NEG_INF = float("-inf")


def take_keys(dirty: set, limit: int | None = None) -> list:
    """The keys to serialise now, removed from `dirty`: all of them, or at most `limit` (the rest stay
    for the next call). A worker serialises a batch's changed keys in slices this way (issue 19: a
    5,000-record batch took up to 0.35 s at once); without a limit, in the set's own order, as always."""
    if limit is None or len(dirty) <= limit:
        keys = list(dirty)
        dirty.clear()
        return keys
    return [dirty.pop() for _ in range(limit)]


class Publisher:
    """Versioned publication of keyed records.

    build(key, version) returns the record, or None when there is nothing to publish for the key
    (an empty bucket that was never published). `touch(key, due_ms)` says the key's content may
    have changed; it is published when the watermark reaches due_ms, or at once (if changed) when
    it was published before.
    """

    def __init__(self, build: Callable[[Key, int], dict | None]) -> None:
        self.build = build
        self.published: dict[Key, list] = {}   # key -> [version, digest]
        self.pending: dict[Key, int] = {}      # never published yet: key -> due time
        self.next_due: Any = float("inf")  # a time (ms), or inf (Any: kept as it is, compiled)
        # (due time, key) of the pending keys, oldest first: advance() pops only what is due instead of
        # scanning every pending key (an entry whose key left `pending` or got another due time is stale)
        self._due: list[tuple[int, Key]] = []
        self.changed: set[Key] = set()
        # A publication cut into slices (advance(limit)): the changed keys in order, last first; a key
        # stays in `changed` until it is published, so `changed` says whether anything is left.
        self._work: list[Key] = []
        self.visited = 0  # keys built by the last advance() (what its `limit` counts)
        self.dirty: set[Key] = set()           # published entries changed since the last take
        # A first version's digest is computed only when something asks for it (a later publication
        # of the key, or take_dirty): most keys are published once. Until then its entry is
        # [1, None] and the record waits here (records are not modified once returned).
        self._undigested: dict[Key, dict] = {}
        # Optional, shared with the owner (QueueBook): alarm[0] is lowered to the watermark at which
        # a touch makes something due (-inf: at once), so the owner need not ask on every message.
        self.alarm: list[float] | None = None

    def touch(self, key: Key, due_ms: int) -> None:
        if key in self.published:
            self.changed.add(key)
            if self.alarm is not None:
                self.alarm[0] = _NEG_INF
        elif key not in self.pending:
            self.pending[key] = due_ms
            heapq.heappush(self._due, (due_ms, key))
            if due_ms < self.next_due:
                self.next_due = due_ms
                if self.alarm is not None and due_ms < self.alarm[0]:
                    self.alarm[0] = due_ms

    def advance(self, watermark_ms: int, limit: int | None = None) -> list[dict]:
        """Records due at this watermark, in key order. With `limit`, at most that many keys are built
        (the costly part); what is left stays in `changed` (non-empty: call again, before any change).
        Cut into any slices, the records and the state at the end are those of one whole call."""
        if watermark_ms >= self.next_due:
            pending, heap, changed = self.pending, self._due, self.changed
            while heap and heap[0][0] <= watermark_ms:
                d, k = heapq.heappop(heap)
                if pending.get(k) == d:
                    del pending[k]
                    changed.add(k)
            self._next_due_from_heap()
        changed = self.changed
        self.visited = 0
        if not changed:
            return []
        out: list[dict] = []
        budget = publish_changed(changed, self._work, self._publish, out, -1 if limit is None else limit)
        self.visited = -1 - budget if limit is None else limit - budget
        return out

    def _next_due_from_heap(self) -> None:
        heap, pending = self._due, self.pending
        while heap and pending.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        self.next_due = heap[0][0] if heap else float("inf")

    def flush(self) -> list[dict]:
        """End of input: everything pending is due now."""
        self.changed.update(self.pending)
        self.pending.clear()
        self._due.clear()
        self.next_due = float("inf")
        self._work.clear()
        return self.advance(-1)

    def _publish(self, key: Key) -> dict | None:
        prev = self.published.get(key)
        rec = self.build(key, (prev[0] + 1) if prev else 1)
        if rec is None:
            return None
        if prev is None:
            self.published[key] = [rec["version"], None]
            self._undigested[key] = rec
            self.dirty.add(key)
            return rec
        d = digest(rec)
        if self._digest(key, prev) == d:
            return None
        self.published[key] = [rec["version"], d]
        self.dirty.add(key)
        return rec

    def _digest(self, key: Key, entry: list) -> str:
        if entry[1] is None:
            entry[1] = digest(self._undigested.pop(key))
        return entry[1]

    def forget(self, key: Key) -> None:
        """Expiry: the key can no longer change."""
        if self.pending.pop(key, None) is not None and self._due and self._due[0][1] == key:
            self._next_due_from_heap()
        self.changed.discard(key)
        self._undigested.pop(key, None)
        if self.published.pop(key, None) is not None:
            self.dirty.add(key)

    def take_dirty(self, limit: int | None = None) -> dict[Key, list | None]:
        """Published entries changed since the last call (None: forgotten); with `limit`, at most that
        many (the rest stay dirty). Computes the digests still owed, the costly part after a day close."""
        out = {}
        for k in take_keys(self.dirty, limit):
            entry = self.published.get(k)
            if entry is not None:
                self._digest(k, entry)
            out[k] = entry
        return out
