"""The offset-repeat guard skips only offsets whose effect is in the books (processor/offset_guard.py)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.offset_guard import RepeatGuard, mend

TOPIC = "contact-events"
TP = (TOPIC, 2)


class Stage:
    """A stage's books as a set of applied offsets, fed through the guard as worker/offsets.py mend_gaps does
    (a gap is read directly from the log and applied first)."""

    def __init__(self, guard: RepeatGuard) -> None:
        self.guard, self.books = guard, set()
        self.repeats = 0

    def hand_over(self, offsets) -> None:
        for o in offsets:
            verdict = self.guard.verdict(TP, o)
            if verdict == "held":
                continue
            if verdict == "repeat":
                self.repeats += 1
                continue
            if verdict == "gap":
                self.books.update(range(self.guard.last(TP) + 1, o))
            self.books.add(o)
            self.guard.applied(TP, o)

    def rebuild(self, committed: int) -> None:
        """on_recover: the rebuilt books hold what the tables hold; at worst only the committed offsets."""
        self.books = set(range(committed))
        self.guard.rebuilt(TOPIC)


def test_issue_24_b_offsets_applied_before_a_rebuild_that_kept_the_partition_are_applied_again_after_the_seek():
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.sought({TP: 4400})
    stage.hand_over(range(4400, 4632))  # applied up to 4631; committed up to 4526 (exclusive)
    stage.rebuild(committed=4526)  # a rebalance kept partition 2
    stage.hand_over(range(4600, 4632))  # fetched before the seek, handed over after the rebuild
    guard.sought({TP: 4526})  # the seek that ends the recovery
    stage.hand_over(range(4526, 4700))  # delivered again from the committed offset
    assert set(range(4700)) - stage.books == set()


def test_a_repeat_of_what_these_books_applied_is_skipped():
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.sought({TP: None})  # nothing committed yet: from offset 0
    stage.hand_over(range(0, 50))
    stage.hand_over(range(40, 60))  # a StallWatch seek-back, a gap read then delivered
    assert stage.books == set(range(60)) and stage.repeats == 10


def test_a_fetch_of_before_the_seek_handed_over_after_it_is_a_gap_read_in_order():
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.sought({TP: 100})
    stage.hand_over([130, 131])  # fetched before the seek
    assert stage.books == set(range(100, 132))
    stage.hand_over(range(100, 140))
    assert stage.books == set(range(100, 140)) and stage.repeats == 32


# A consumer's life: each step delivers a run of the log from its fetch position, seeks back
# (StallWatch), or rebalances (a rebuild that keeps only the committed offsets' effects, then the
# seek to the committed offset, possibly with a fetch of before the seek handed over in between).
step = st.one_of(
    st.tuples(st.just("deliver"), st.integers(1, 40)),
    st.tuples(st.just("commit"), st.integers(0, 1)),
    st.tuples(st.just("seek_back"), st.integers(0, 30)),
    st.tuples(st.just("rebalance"), st.integers(0, 30)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=40))
def test_every_offset_ends_up_in_the_books_and_none_is_applied_out_of_order(steps):
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.sought({TP: None})
    position = committed = 0
    order: list[int] = []  # offsets applied to the current books, in order
    for kind, n in steps:
        if kind == "deliver":
            run = list(range(position, position + n))
            position += n
            before = set(stage.books)
            stage.hand_over(run)
            order.extend(sorted(stage.books - before))
        elif kind == "commit":
            # at_least_once / exactly_once: only what the current books applied, in offset order, is committed
            applied_run = committed
            while applied_run in stage.books:
                applied_run += 1
            committed = applied_run if n else committed
        elif kind == "seek_back":
            position = max(0, position - n)  # offsets delivered again
        else:
            stale = list(range(position, position + n))  # fetched before the seek, handed over after the rebuild
            stage.rebuild(committed)
            order = []
            stage.hand_over(stale)
            guard.sought({TP: committed})
            position = committed
    stage.hand_over(range(position, position + 50))
    end = position + 50
    assert set(range(end)) <= stage.books
    assert order == sorted(order) and len(order) == len(set(order))  # never an older one after a newer one


def test_a_seek_without_a_rebuild_keeps_the_marks_chaos_drill_seed_27001():
    """Faust's fetch loop seeks to the committed offsets when it gets records while the flow is
    stopped (a rebalance); that seek ended after the rebuild and the recovery's own seek, when the
    stage had applied records to the rebuilt books: with the marks set back, they were applied
    again (a dead letter sent twice in one transaction, 100 ms apart)."""
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.hold(TOPIC)  # the rebalance begins
    stage.rebuild(committed=273)
    guard.sought({TP: 273})  # the recovery's seek
    stage.hand_over(range(273, 495))
    guard.sought({TP: 273})  # the fetch loop's seek, begun while the flow was stopped, ends now
    stage.hand_over(range(273, 495))  # delivered again from the committed offset
    assert stage.books == set(range(495)) and stage.repeats == 495 - 273


def test_a_held_topic_stays_held_until_the_seek_after_its_rebuild():
    guard = RepeatGuard()
    stage = Stage(guard)
    guard.sought({TP: None})
    stage.hand_over(range(0, 10))
    guard.hold(TOPIC)  # the rebalance begins
    guard.sought({TP: 5})  # the fetch loop's seek while the flow is stopped, before the rebuild
    assert guard.verdict(TP, 10) == "held"
    stage.rebuild(committed=5)
    assert guard.verdict(TP, 10) == "held"
    guard.sought({TP: 5})
    assert guard.verdict(TP, 5) == "next"


class Log:
    """One partition's log, read again by offset ranges; `unreadable` ranges give up like GapReader after its timeout."""

    def __init__(self, size: int) -> None:
        self.records = [Record(TOPIC, 2, o) for o in range(size)]
        self.unreadable = 0  # how many next reads give up half-way
        self.passed: list[tuple[int, int]] = []

    async def read_range(self, topic, partition, start, end):
        if self.unreadable:
            self.unreadable -= 1
            return self.records[start:start + (end - start) // 2], False
        return self.records[start:end], True

    async def pass_empty(self, topic, partition, start, end, found):
        self.passed.append((start, end))


@dataclass
class Record:
    topic: str
    partition: int
    offset: int


@dataclass
class Counts:
    offsets_held: int = 0
    offset_gaps: int = 0
    offset_repeats: int = 0


def _mend(batch, guard, log, counts):
    return asyncio.run(mend(batch, guard, log.read_range, log.pass_empty, counts))


def test_a_gap_is_read_again_and_applied_before_the_record_after_it():
    guard, log, counts = RepeatGuard(), Log(20), Counts()
    guard.sought({TP: 0})
    applied = _mend([log.records[0], log.records[5], log.records[6]], guard, log, counts)
    assert [r.offset for r in applied] == [0, 1, 2, 3, 4, 5, 6]
    assert guard.last(TP) == 6 and counts.offset_gaps == 1 and log.passed == [(1, 5)]


def test_a_gap_that_cannot_be_read_completely_is_never_skipped():
    """GapReader gives up after 30 s: applying the record after the gap lost the offsets not read."""
    guard, log, counts = RepeatGuard(), Log(20), Counts()
    other = Record(TOPIC, 3, 0)
    guard.sought({TP: 0, (TOPIC, 3): 0})
    log.unreadable = 1
    applied = _mend([log.records[0], log.records[5], log.records[6], other], guard, log, counts)
    assert [(r.partition, r.offset) for r in applied] == [(2, 0), (3, 0)]  # the other partition goes on
    assert guard.last(TP) == 0 and log.passed == []
    # The partition's next delivery reads the whole range again, the records not applied above included.
    applied = _mend([log.records[7]], guard, log, counts)
    assert [r.offset for r in applied] == [1, 2, 3, 4, 5, 6, 7]
    assert guard.last(TP) == 7


def test_repeats_and_held_records_are_counted_not_applied():
    guard, log, counts = RepeatGuard(), Log(20), Counts()
    guard.sought({TP: 3})
    assert [r.offset for r in _mend(log.records[3:6], guard, log, counts)] == [3, 4, 5]
    assert _mend(log.records[4:6], guard, log, counts) == [] and counts.offset_repeats == 2
    guard.hold(TOPIC)
    assert _mend([log.records[6]], guard, log, counts) == [] and counts.offsets_held == 1
