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
