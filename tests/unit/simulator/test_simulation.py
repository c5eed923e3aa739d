"""The simulation: its contract conformance, its determinism and its behaviours."""
from __future__ import annotations

import collections
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from processor import cli
from processor.core.events import parse_ts_ms
from processor.decode import EVENT_TYPES, decode
from processor.simulator import (SURVEYS, Simulation, delivered_events, dumps, load_model_text, model_from_dict,
                                 sorted_events)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "config" / "simulation.example.yaml"
START = parse_ts_ms("2026-11-23T12:00:00Z") / 1000  # staffing rises and falls (Paris and New York)


def _rich_example() -> dict:
    """The example model with the rare follow-ups made frequent, so a short run shows every type."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["defaults"].update({"churn": {"probability": 0.3, "delay": 600}, "qa": {"probability": 0.3, "delay": 600},
                             "survey": {"probability": 0.5, "kinds": {"csat": 1, "ces": 1, "nps": 1}, "delay": 300}})
    return data


@pytest.fixture(scope="module")
def rich_run():
    sim = Simulation(model_from_dict(_rich_example()), seed=4, start=START, duration_seconds=6 * 3600,
                     duplicate_probability=0.02, disorder_seconds=10)
    return sim, delivered_events(sim)


# ------------------------------------------------------------------------------ the contract

def test_every_event_is_valid_contract_input(rich_run):
    sim, feed = rich_run
    for ev in feed:
        decode(dumps(ev).encode())  # raises BadEvent otherwise
    types = collections.Counter(ev["type"] for ev in feed)
    assert set(types) == set(EVENT_TYPES), set(EVENT_TYPES) - set(types)
    # `automated` is optional (absent means false): the realistic feed leaves it out when false
    replies = collections.Counter(ev.get("automated", False) for ev in feed if ev["type"] == "message.agent_replied")
    assert replies[True] > 0 and replies[False] > 0


def test_surveys_use_the_contract_scales(rich_run):
    sim, feed = rich_run
    surveys = [ev for ev in feed if ev["type"] == "survey.responded"]
    assert {ev["survey"] for ev in surveys} == set(SURVEYS)
    for ev in surveys:
        assert ev["scale_max"] == SURVEYS[ev["survey"]]
        assert (0 if ev["survey"] == "nps" else 1) <= ev["score"] <= ev["scale_max"]
    issue = {cid: c["issue"] for cid, c in sim.contacts.items()}  # the feed leaves some issues out
    assert all((ev["survey"] == "complaint") == (issue[ev["contact_id"]] == "complaint") for ev in surveys)


def test_contact_lifecycles_are_in_order(rich_run):
    """Per contact, in event time: created first; each queue segment ends once; legs pair up."""
    sim, _ = rich_run
    by_contact = collections.defaultdict(list)
    for _, ev in sim.events():
        if "contact_id" in ev:
            by_contact[ev["contact_id"]].append(ev)
    for cid, evs in by_contact.items():
        assert evs[0]["type"] == "contact.created", cid
        waiting = None
        talking = False
        for ev in evs[1:]:
            t = ev["type"]
            if t == "contact.queued":
                assert waiting is None and not talking, cid
                waiting = ev["queue_id"]
            elif t in ("contact.answered", "contact.abandoned", "contact.flowed_out"):
                assert waiting == ev["queue_id"], cid
                waiting = None
                talking = t == "contact.answered"
            elif t in ("contact.hold_started", "contact.hold_ended", "contact.wrapup_started"):
                assert talking, cid
            elif t in ("contact.transferred", "contact.wrapup_ended"):
                assert talking, cid
                talking = False


def test_agents_handle_one_contact_at_a_time_and_go_offline_at_the_end(rich_run):
    sim, _ = rich_run
    busy: dict[str, str | None] = {}
    states = collections.defaultdict(list)
    logged_off_early = set()
    for t, ev in sim.events():
        a = ev.get("agent_id")
        if ev["type"] == "contact.answered":
            assert busy.get(a) is None, a
            busy[a] = ev["contact_id"]
        elif ev["type"] in ("contact.wrapup_ended", "contact.transferred"):
            assert busy.get(a) == ev["contact_id"], a
            busy[a] = None
        elif ev["type"] == "agent.state_changed":
            assert not states[a] or states[a][-1] != ev["state"]  # a change, not a repeat
            states[a].append(ev["state"])
            if ev["state"] == "offline" and len(states[a]) > 1 and t * 1000 < sim.end_ms:
                logged_off_early.add(a)
    assert all(s[-1] == "offline" for s in states.values())
    seen = collections.Counter(s for ss in states.values() for s in ss)
    assert all(seen[s] > 0 for s in ("available", "busy", "acw", "away", "offline"))
    # staffing: agents off shift at the start log on later; others log off before the end
    assert any(ss[0] == "offline" and "busy" in ss for ss in states.values())
    assert logged_off_early


def test_customers_come_back_on_the_same_issue(rich_run):
    sim, _ = rich_run
    repeats = [c for c in sim.contacts.values() if c["repeat_of"]]
    assert len(repeats) > 20
    for c in repeats:
        first = sim.contacts[c["repeat_of"]]
        assert (c["customer_id"], c["issue"]) == (first["customer_id"], first["issue"])
        assert first["created_ms"] < c["created_ms"]
    tickets = [c for c in sim.contacts.values() if c["channel"] == "email"]
    assert any(c["reopened"] for c in tickets) and any(c["resolved"] for c in tickets)


def test_daily_curve_follows_local_hours_across_a_dst_change():
    """Arrivals only in the curve's open hours (Paris local time, over the March DST change), at the
    curve's rates: 200/h from 9 to 12, 100/h from 12 to 17 (Poisson: within 4 standard deviations)."""
    model = load_model_text("""
queues:
  - queue: q
    time_zone: Europe/Paris
    arrivals_per_hour: 100
    daily_curve: {0: 0, 9: 2, 12: 1, 17: 0}
    agents: 0
    patience_seconds: null
    repeat: null
    auto_reply_probability: 0
""")
    start = parse_ts_ms("2026-03-25T00:00:00Z") / 1000   # DST in Paris: 2026-03-29 02:00 -> 03:00
    sim = Simulation(model, seed=9, start=start, duration_seconds=10 * 86400)
    paris = ZoneInfo("Europe/Paris")
    per_hour = collections.Counter()
    for t, ev in sim.events():
        if ev["type"] == "contact.created":
            per_hour[datetime.fromtimestamp(t, paris).hour] += 1
    assert set(per_hour) == set(range(9, 17))
    morning, afternoon = sum(per_hour[h] for h in range(9, 12)), sum(per_hour[h] for h in range(12, 17))
    for n, expected in ((morning, 10 * 3 * 200), (afternoon, 10 * 5 * 100)):
        assert abs(n - expected) < 4 * expected ** 0.5, (n, expected)


# ------------------------------------------------------------------------------ determinism

def _simulate_cli(tmp_path, name, *extra) -> tuple[bytes, bytes]:
    events, truth = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.truth.jsonl"
    args = ["simulate", "--output", str(events), "--truth", str(truth), "--hours", "1.5",
            "--start", "2026-11-23T14:00:00Z", "--model", str(EXAMPLE), *extra]
    assert cli.main(args) == 0
    return events.read_bytes(), truth.read_bytes()


def test_same_seed_and_model_give_byte_identical_output(tmp_path, monkeypatch):
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    noisy = ("--seed", "11", "--duplicates", "0.05", "--disorder", "20")
    first, second = _simulate_cli(tmp_path, "a", *noisy), _simulate_cli(tmp_path, "b", *noisy)
    assert first == second and len(first[0]) > 100_000
    other = _simulate_cli(tmp_path, "c", "--seed", "12", "--duplicates", "0.05", "--disorder", "20")
    assert other[0] != first[0]
    # Duplicates and disorder are the transport's: the simulated center (and its truth) is the same.
    quiet_events, quiet_truth = _simulate_cli(tmp_path, "d", "--seed", "11")
    assert quiet_truth == first[1]
    assert sorted(set(first[0].splitlines())) == sorted(quiet_events.splitlines())


def test_sorted_events_keeps_the_old_interface():
    sim = Simulation(seed=11, start=START, duration_seconds=1800, duplicate_probability=0.1, disorder_seconds=5)
    events = sorted_events(sim)
    times = [parse_ts_ms(ev["ts"]) for ev in events]
    assert times == sorted(times)
    ids = [ev["event_id"] for ev in events]
    assert len(ids) > len(set(ids))  # duplicates, each right after its original
    assert {(ev["event_id"]) for ev in events} == {ev["event_id"] for ev in delivered_events(sim)}


def test_kafka_mode_hands_the_feed_and_speed_to_the_producer(monkeypatch, tmp_path):
    seen = {}

    async def fake_produce(events, settings, bootstrap, topic, speed):
        seen.update(events=events, bootstrap=bootstrap, topic=topic, speed=speed)
        return 0

    monkeypatch.setattr(cli, "_produce", fake_produce)
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    assert cli.main(["simulate", "--bootstrap", "kafka:9092", "--topic", "contact-events", "--seed", "7",
                     "--hours", "0.5", "--speed", "0", "--start", "2026-11-23T14:00:00Z"]) == 0
    assert (seen["bootstrap"], seen["topic"], seen["speed"]) == ("kafka:9092", "contact-events", 0.0)
    # in delivery order: presence events stamped early by their skewed clock come when they happen
    expected = delivered_events(Simulation(seed=7, start=parse_ts_ms("2026-11-23T14:00:00Z") / 1000,
                                           duration_seconds=1800))
    assert seen["events"] == expected
