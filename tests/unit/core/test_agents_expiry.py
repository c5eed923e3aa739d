"""Issue 25: the state an agent holds (offline included) outlives housekeeping, and no expiry pass, wherever
it falls, changes an `agent_interval` figure. 15-minute intervals, lateness 30 s, retention 2 h, UTC."""
from __future__ import annotations

import pytest

from processor.core.pipeline import EXPIRE_EVERY, Pipeline
from tests.coretools import Contact, Run, agent_state, at, engine, tick

K = "agent_interval"


def _issue_scenario(other_changes: int) -> list:
    """a1: available 08:00, offline 08:05; QA 80 for a1 at 16:37; available 17:07, offline 17:10. Another
    agent b changes state `other_changes` times, evenly from 08:00 to 18:00 (unrelated traffic)."""
    a1 = [agent_state("a1", "available", "08:00:00"), agent_state("a1", "offline", "08:05:00"),
          agent_state("a1", "available", "17:07:00"), agent_state("a1", "offline", "17:10:00")]
    qa = Contact("cq", created="16:36:00", agent="a1").qa(80, "16:37:00").events
    step = (at("18:00:00") - at("08:00:00")) // other_changes
    b = [agent_state("b", ("available", "busy")[i % 2], at("08:00:00") + i * step) for i in range(other_changes)]
    return sorted(a1 + qa + b, key=lambda e: e.ts_ms)


def _a1(records: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for r in records:
        if r["kind"] == K and r["agent_id"] == "a1":
            latest[r["interval_start"][11:16]] = r
    return latest


@pytest.mark.parametrize("other_changes", [8_000, 14_000])
def test_an_offline_agent_is_not_forgotten_by_housekeeping(other_changes):
    """The issue's reproduction: with 14,000 changes of b a housekeeping pass (every EXPIRE_EVERY events)
    falls more than 2 h after a1 went offline, and a1's offline time used to count nowhere after it."""
    assert EXPIRE_EVERY == 10_000  # 8,000 events: no pass before the end; 14,000: one, at about 15:00
    pipe = Pipeline(engine())
    records = []
    for e in _issue_scenario(other_changes):
        records += pipe.feed(e)[0]
    records += pipe.finish()
    a1 = _a1(records)
    assert a1["16:30"]["seconds_by_state"] == {"available": 0.0, "busy": 0.0, "acw": 0.0, "away": 0.0, "offline": 900.0}
    assert a1["16:30"]["qa_score"] == {"value": 80.0, "count": 1}
    assert a1["17:00"]["seconds_by_state"]["available"] == 180.0
    assert a1["17:00"]["seconds_by_state"]["offline"] == 720.0


def test_a_pass_right_after_the_retention_keeps_the_offline_state():
    """The same with a pass forced at a time two hours after a1's last change, and at every later event."""
    plain, swept = Pipeline(engine()), Pipeline(engine())
    out_plain, out_swept = [], []
    for e in _issue_scenario(200) + [tick("18:30:00")]:
        out_plain += plain.feed(e)[0]
        out_swept += swept.feed(e)[0]
        swept.expire()
    out_plain += plain.finish()
    out_swept += swept.finish()
    assert out_swept == out_plain
    assert _a1(out_swept)["17:00"]["seconds_by_state"]["offline"] == 720.0


def test_an_interval_spent_offline_with_a_score_has_a_record_and_one_without_has_none():
    """Documentation point (1): a survey or QA score attributed to an agent makes a record even if the agent
    was offline all interval; offline all interval with nothing else makes none."""
    events = [agent_state("a1", "offline", "09:00:00")] + Contact("cq", created="09:30:00", agent="a1").qa(70, "09:40:00").events
    out = [r for r in _run(events + [tick("10:30:00")]) if r["kind"] == K]
    assert [(r["interval_start"][11:16], r["seconds_by_state"]["offline"], r["qa_score"]["count"]) for r in out] == [
        ("09:00", 900.0, 0), ("09:30", 900.0, 1)]


def test_at_the_end_of_a_replay_a_staffed_agent_holds_its_state_to_the_end_of_the_last_interval():
    """Documentation point (2): with flush, an agent whose last state is not offline is in that state up to
    the end of the interval holding the input's last event time; no interval after it gets a record."""
    out = [r for r in _run([agent_state("a1", "available", "10:07:00"), tick("10:50:00")]) if r["kind"] == K]
    assert [(r["interval_start"][11:16], r["seconds_by_state"]["available"]) for r in out] == [
        ("10:00", 480.0), ("10:15", 900.0), ("10:30", 900.0), ("10:45", 900.0)]


def test_a_late_change_that_empties_a_published_record_publishes_a_version_with_every_figure_zero():
    """Documentation point (3): as an emptied queue_interval (offered 0, handled 0) or experience_interval
    (every count 0), the emptied agent_interval's next version has every figure zero: all seconds 0,
    handled 0, every score count 0, ratios null. A consumer keeping the latest version per key sums the
    same totals as one that never saw the record."""
    pipe = Pipeline(engine())
    out = []
    for e in [agent_state("a1", "available", "10:00:00"), tick("10:40:00")]:
        out += pipe.feed(e)[0]
    assert [(r["interval_start"][11:16], r["version"]) for r in out if r["kind"] == K] == [("10:00", 1), ("10:15", 1)]
    out = [r for r in pipe.feed(agent_state("a1", "offline", "10:14:00"))[0] if r["kind"] == K]  # 26 min late
    by_start = {r["interval_start"][11:16]: r for r in out}
    assert by_start["10:00"]["version"] == 2 and by_start["10:00"]["seconds_by_state"]["offline"] == 60.0
    gone = by_start["10:15"]
    assert gone["version"] == 2
    assert set(gone["seconds_by_state"].values()) == {0.0}
    assert (gone["handled"], gone["aht_seconds"], gone["utilization"], gone["occupancy"]) == (0, None, None, None)
    assert all(gone[k]["count"] == 0 for k in ("csat", "ces", "nps", "complaint_csat", "qa_score"))
    from processor.decode import load_rollup_validators
    load_rollup_validators()[K](gone)
    # and a replay of the same input in event-time order never publishes 10:15 at all
    clean = [r for r in _run([agent_state("a1", "available", "10:00:00"), agent_state("a1", "offline", "10:14:00"),
                              tick("10:40:00")]) if r["kind"] == K]
    assert [r["interval_start"][11:16] for r in clean] == ["10:00"]


def _run(events) -> list[dict]:
    pipe = Pipeline(engine())
    out = []
    for e in events:
        out += pipe.feed(e)[0]
    return out + pipe.finish()


def test_expire_with_a_limit_visits_at_most_that_many_keys_and_resumes_where_it_stopped():
    """issue 19: expire(limit=k) returns the (agent, interval) keys it visited; k means "call again". Sliced
    passes end in the same book as one whole pass."""
    from processor.core.agents import AgentBook

    def book_with_history() -> AgentBook:
        book = AgentBook(engine())
        for i, agent in enumerate(("a1", "a2", "a3")):
            for k in range(6):
                t = at("08:00:00") + k * 20 * 60_000 + i * 1000
                book.apply(f"as|{agent}|{k}", ("ast", agent, t, ("available", "offline")[k % 2]))
                book.apply(f"al|{agent}|{k}", ("aleg", agent, t + 500, 60_000))
        book.advance(at("10:00:00"))
        return book

    whole, sliced = book_with_history(), book_with_history()
    later = at("13:00:00")
    whole.advance(later)
    sliced.advance(later)
    total = whole.expire(later)
    assert total > 4 and whole.expire(later) == 0
    counts = [sliced.expire(later, limit=4)]
    while counts[-1] == 4:
        counts.append(sliced.expire(later, limit=4))
    assert sum(counts) == total and all(c <= 4 for c in counts) and counts[-1] < 4
    assert sliced.expire(later, limit=0) == 0
    assert (sliced.facts, sliced.bases, sliced.legs, sliced.publisher.published) == \
        (whole.facts, whole.bases, whole.legs, whole.publisher.published)
    assert set(whole.bases) == {"a1", "a2", "a3"} and not whole.timelines  # every agent: its last change only
