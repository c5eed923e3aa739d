"""Which input offsets a stage applies: each once per life of its books, in order, none skipped.

The stages read their topics in offset order, but an offset can be delivered again: the consumer
seeks back (the end of every rebalance, a StallWatch seek), a gap is read again directly, a fetch
made before a seek is handed over after it. Applying an older message after a newer one would turn
a fact back to an earlier state, so an offset at or below the last one applied is not applied
again ("N offsets ... delivered again after X: not applied twice"). Skipping is only right for an
offset whose effect is in the books the stage applies to now. Issue 24: after a rebalance that
kept a partition, the guard remembered offsets applied to the books before the rebuild and skipped
them although the rebuilt books did not hold them (31 events lost).

The rule, path by path (docs/reliability.md#the-offset-repeat-guard):

- The books live from one rebuild (`rebuilt`, called by on_recover under the stage lock) to the
  next. Within that life, `applied` raises the mark one offset at a time; an offset at or below the
  mark was applied to these very books, so a repeat (a StallWatch seek-back to the offset after
  the last delivered one, a gap read directly and then delivered by the consumer) is skipped
  rightly.
- A rebalance holds every topic from its start (`hold`, on_partitions_revoked, which then commits
  what was applied): nothing more is applied to books about to be rebuilt.
- A rebuild forgets the topic's marks: the rebuilt books hold what the tables hold, and the only
  offsets known to be in them are the committed ones (at_least_once commits an offset only after
  the records it caused were delivered, changelog writes included; exactly_once commits offsets,
  table writes and outputs in one transaction). Nothing of the topic is applied until the seek to
  the committed offsets that ends the recovery (`held`): a record handed over in between was
  fetched before that seek and comes again after it (a partition with nothing committed is sought
  to its start: aiokafka leaves it where it is, worker/patches.py track_seeks).
- The first seek after a rebuild (`sought`) sets the mark to the committed offset minus one for
  every partition, kept or new, whatever was applied before (a later seek without a rebuild, such
  as the one Faust's fetch loop makes when it gets records while the flow is stopped, moves the
  consumer but not the books: the marks stay, what comes again is a repeat): everything from the committed offset on is applied again to
  the rebuilt books (events are deduplicated by id there; facts are re-applied in offset order, so
  they end in their latest state). A partition with no committed offset starts before offset 0.
  A record above the mark + 1 after the seek (a fetch of before the seek, handed over late) is a
  gap: the missing offsets are read directly and applied first, in order.
So an offset is skipped only when it is below the committed offset of the last seek or was applied
to the current books since then: never one that was lost with the books of before.
"""
from __future__ import annotations

import logging

log = logging.getLogger("processor")


class RepeatGuard:
    """The last offset applied per (topic, partition), and the topics waiting for their seek."""

    def __init__(self) -> None:
        self.marks: dict[tuple[str, int], int] = {}  # (topic, partition) -> last offset applied
        self.waiting: set[str] = set()  # topics held or rebuilt, not sought to their committed offsets yet
        self.unsought: set[str] = set()  # topics rebuilt since their last seek: the next seek sets their marks

    def rebuilt(self, topic: str) -> None:
        """The topic's books were rebuilt from the tables: forget its marks until the seek."""
        self.marks = {tp: o for tp, o in self.marks.items() if tp[0] != topic}
        self.waiting.add(topic)
        self.unsought.add(topic)

    def hold(self, topic: str) -> None:
        """A rebalance began: apply nothing of the topic until the seek after the rebuild."""
        self.waiting.add(topic)

    def sought(self, committed: dict[tuple[str, int], int | None]) -> None:
        """The consumer sought these partitions to their committed offsets (None: none committed).

        Only the first seek after a rebuild sets a topic's marks (and a partition's first mark): a
        seek that does not follow a rebuild moves the consumer, not the books, which still hold
        every offset up to the mark. Faust's fetch loop also seeks to the committed offsets when it
        gets records while the flow is stopped (a rebalance); that seek can end after the rebuild and
        the recovery's own seek, once the stage has applied records to the rebuilt books. Setting the
        marks back then applied them twice: chaos drill seed 27001 (exactly_once), a dead letter sent
        twice in one transaction 100 ms apart. A held topic stays held until a seek after its rebuild."""
        topics = {topic for topic, _ in committed}
        for tp, offset in committed.items():
            if tp[0] in self.unsought or tp not in self.marks:
                self.marks[tp] = offset - 1 if offset is not None and offset >= 0 else -1
        done = topics & self.unsought
        self.waiting -= done
        self.unsought -= done

    def verdict(self, tp: tuple[str, int], offset: int) -> str:
        """What to do with offset `offset` of `tp`: "held" (waiting for the seek: drop it, it comes
        again), "repeat" (applied to these books already: skip it), "gap" (offsets before it are
        missing: read them, then apply it) or "next" (apply it)."""
        if tp[0] in self.waiting:
            return "held"
        last = self.marks.get(tp)
        if last is None or offset == last + 1:
            return "next"
        return "gap" if offset > last + 1 else "repeat"

    def last(self, tp: tuple[str, int]) -> int | None:
        return self.marks.get(tp)

    def applied(self, tp: tuple[str, int], offset: int) -> None:
        self.marks[tp] = offset


async def mend(batch: list, guard: RepeatGuard, read_range, pass_empty, counts) -> list:
    """The records of `batch` to apply, in order, with the offsets the consumer skipped read again.

    `read_range(topic, partition, start, end)` reads offsets [start, end) directly and says whether
    it got to `end`; `pass_empty(topic, partition, start, end, found)` lets Faust commit past a range
    read completely; `counts` has the counters offsets_held, offset_gaps and offset_repeats.
    A gap that cannot be read completely (the reader gives up after its timeout) is never skipped:
    the record after it and the rest of its partition in this batch are not applied, the mark stays,
    so the next delivery of that partition is a gap again and the range is read once more (or a
    restart reads it from the committed offset, which cannot pass an offset not applied). Applying
    the record and moving the mark, as before, lost the offsets not read for good.
    """
    mended: list = []
    repeats: dict[tuple, list] = {}  # (topic, partition) -> [first, last, count, applied up to]
    blocked: set[tuple] = set()  # partitions whose gap could not be read: nothing more of them now
    for r in batch:
        tp = (r.topic, r.partition)
        if tp in blocked:
            continue
        verdict = guard.verdict(tp, r.offset)
        if verdict == "held":  # rebuilt, not sought yet: fetched before the seek, comes again after it
            counts.offsets_held += 1
            continue
        last = guard.last(tp)
        if verdict == "gap":
            missed, complete = await read_range(r.topic, r.partition, last + 1, r.offset)
            if not complete:
                log.error("offsets %d..%d of %s[%d] could not all be read again: %s[%d] waits from %d on "
                          "(read again with its next delivery or after a restart; nothing skipped)",
                          last + 1, r.offset - 1, r.topic, r.partition, r.topic, r.partition, last + 1)
                blocked.add(tp)
                continue
            if missed:
                counts.offset_gaps += 1
                log.error("offsets %d..%d of %s[%d] were skipped by the consumer: read %d messages again",
                          last + 1, r.offset - 1, r.topic, r.partition, len(missed))
            await pass_empty(r.topic, r.partition, last + 1, r.offset, missed)
            mended += missed
        elif verdict == "repeat":
            # Applied to these books already (read again above, a seek back): an older message
            # applied after a newer one would turn a fact back to an earlier state.
            counts.offset_repeats += 1
            seen = repeats.get(tp)
            repeats[tp] = [r.offset, r.offset, 1, last] if seen is None else [seen[0], r.offset, seen[2] + 1, last]
            continue
        guard.applied(tp, r.offset)
        mended.append(r)
    for (topic, partition), (first, end, count, last) in repeats.items():
        log.warning("%d offsets of %s[%d] (%d..%d) delivered again after %d: not applied twice",
                    count, topic, partition, first, end, last)
    return mended
