"""Property-based tests of resolution_day, experience_interval and agent_interval against naive
references written here (brute force over the definitions, no shared code with the core).

  (a) resolution_day == reference (FCR, repeat, reopen counts per queue, channel, day)
  (b) experience_interval == reference (nearest-rank percentiles, survey shares on any scale, QA)
  (c) agent_interval == reference (seconds by state, second by second; handled)
  (d) arrival order shuffled within the lateness, and duplicated events, change no record
"""
from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import Event, format_ts, parse_ts_ms
from processor.core.pipeline import Pipeline
from processor.core.settings import EngineSettings

BASE = parse_ts_ms("2026-11-23T20:00:00Z")
HOUR = 3_600_000
LATENESS = 30_000
PROFILE = settings(max_examples=int(os.environ.get("CORE_PROP_EXAMPLES", "60")), deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def engine(window_ms: int = HOUR) -> EngineSettings:
    return EngineSettings(interval_minutes=15, lateness_ms=LATENESS, retention_ms=6 * HOUR, recontact_window_ms=window_ms)


def feed(events: list[Event], eng: EngineSettings) -> list[dict]:
    p = Pipeline(eng)
    out = []
    for e in events:
        out += p.feed(e)[0]
    return out + p.finish(flush=True)


def latest(records: list[dict], kind: str) -> dict[tuple, dict]:
    best: dict[tuple, dict] = {}
    for r in records:
        if r["kind"] != kind:
            continue
        key = (r.get("queue_id") or r.get("agent_id"), r.get("channel"), r["interval_start"])
        if key not in best or r["version"] > best[key]["version"]:
            best[key] = r
    return best


def canonical(records: list[dict]) -> list[tuple]:
    """Latest content per key, versions aside (arrival order may add corrections)."""
    out = []
    for kind in ("experience_interval", "resolution_day", "agent_interval", "queue_interval"):
        for key, r in sorted(latest(records, kind).items()):
            out.append((kind, key, sorted((k, repr(v)) for k, v in r.items() if k != "version")))
    return out


def ev(eid: str, type_: str, ts: int, contact_id: str | None = None, **f) -> Event:
    return Event(event_id=eid, type=type_, ts_ms=ts, contact_id=contact_id, **f)


# ------------------------------------------------------------------------------ (a) resolution

@st.composite
def journeys(draw):
    """Contacts of a few customers over ~2 days, with issues that often match."""
    contacts = []
    n = draw(st.integers(1, 14))
    for i in range(n):
        created = BASE + draw(st.one_of(st.integers(0, 52 * HOUR), st.sampled_from([4 * HOUR - 1000, 4 * HOUR, 4 * HOUR + 1000])))
        resolved = draw(st.one_of(st.none(), st.integers(0, 2 * HOUR)))
        reopened = draw(st.one_of(st.none(), st.integers(0, 2 * HOUR))) if resolved is not None else None
        contacts.append({
            "cid": f"c{i}", "customer": draw(st.sampled_from(["u1", "u2", "u3"])),
            "issue": draw(st.sampled_from([None, "A", "B"])), "created": created,
            "channel": draw(st.sampled_from(["voice", "chat"])),
            "queue": draw(st.sampled_from([None, "Q1", "Q2"])),
            "resolved": None if resolved is None else created + resolved,
            "reopened": None if reopened is None else created + resolved + reopened,
        })
    return contacts


def journey_events(contacts) -> list[Event]:
    out = []
    for c in contacts:
        cid = c["cid"]
        out.append(ev(f"{cid}-1", "contact.created", c["created"], cid, channel=c["channel"],
                      customer_id=c["customer"], issue=c["issue"]))
        if c["queue"]:
            out.append(ev(f"{cid}-2", "contact.queued", c["created"], cid, queue_id=c["queue"]))
            out.append(ev(f"{cid}-3", "contact.abandoned", c["created"] + 1000, cid, queue_id=c["queue"]))
        if c["resolved"] is not None:
            out.append(ev(f"{cid}-4", "contact.resolved", c["resolved"], cid))
        if c["reopened"] is not None:
            out.append(ev(f"{cid}-5", "contact.reopened", c["reopened"], cid))
    return sorted(out, key=Event.sort_key)


def resolution_reference(contacts, w: int) -> dict[tuple, list[int]]:
    def match(a, b):
        return a["issue"] is None or b["issue"] is None or a["issue"] == b["issue"]

    def before(a, b):
        return (a["created"], a["cid"]) < (b["created"], b["cid"])

    rows: dict[tuple, list[int]] = defaultdict(lambda: [0] * 6)
    for c in contacts:
        same = [o for o in contacts if o is not c and o["customer"] == c["customer"] and match(o, c)]
        repeat = any(before(o, c) and c["created"] - o["created"] < w for o in same)
        followed = any(before(c, o) and o["created"] - c["created"] < w for o in same)
        resolved = c["resolved"] is not None and c["resolved"] - c["created"] < w
        reopened = resolved and c["reopened"] is not None and c["reopened"] - c["created"] < w
        fcr = not repeat and resolved and not reopened and not followed
        day = c["created"] - c["created"] % 86_400_000  # UTC
        row = rows[(c["queue"] or "none", c["channel"], format_ts(day))]
        for k, v in enumerate((1, repeat, not repeat, fcr, resolved, reopened)):
            row[k] += int(v)
    return rows


@PROFILE
@given(contacts=journeys(), window_h=st.sampled_from([1, 4, 30]))
def test_a_resolution_day_equals_reference(contacts, window_h):
    w = window_h * HOUR
    got = latest(feed(journey_events(contacts), engine(w)), "resolution_day")
    want = resolution_reference(contacts, w)
    assert set(got) == set(want)
    for key, (n, repeats, first, fcr, resolved, reopened) in want.items():
        r = got[key]
        assert (r["contacts"], r["repeats"], r["first_contacts"], r["first_contact_resolved"], r["resolved"],
                r["reopened"]) == (n, repeats, first, fcr, resolved, reopened), key
        assert r["fcr"] == (fcr / first if first else None)
        assert r["repeat_rate"] == repeats / n
        assert r["reopen_rate"] == (reopened / resolved if resolved else None)
        assert r["window_days"] == pytest.approx(window_h / 24)


# ------------------------------------------------------------------------------ (b) experience

SCALES = {"csat": [5, 10], "ces": [5, 7, 10], "nps": [5, 10, 100], "complaint": [5]}


@st.composite
def experiences(draw):
    out = []
    for i in range(draw(st.integers(1, 10))):
        created = BASE + draw(st.integers(0, 2 * HOUR))
        c = {"cid": f"x{i}", "created": created, "channel": draw(st.sampled_from(["chat", "email"])),
             "queue": draw(st.sampled_from([None, "Q1"])), "replies": [], "resolved": None, "surveys": [], "qa": []}
        for _ in range(draw(st.integers(0, 3))):
            c["replies"].append((created + draw(st.integers(0, HOUR)), draw(st.booleans())))
        if draw(st.booleans()):
            c["resolved"] = created + draw(st.integers(0, 2 * HOUR))
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(sorted(SCALES)))
            scale = draw(st.sampled_from(SCALES[kind]))
            c["surveys"].append((created + draw(st.integers(0, HOUR)), kind, draw(st.integers(0, scale)), scale))
        for _ in range(draw(st.integers(0, 2))):
            c["qa"].append((created + draw(st.integers(0, HOUR)), draw(st.sampled_from([0, 50, 87.5, 100, 33.3]))))
        out.append(c)
    return out


def experience_events(contacts) -> list[Event]:
    out = []
    for c in contacts:
        cid = c["cid"]
        out.append(ev(f"{cid}-c", "contact.created", c["created"], cid, channel=c["channel"], customer_id=cid))
        if c["queue"]:
            out.append(ev(f"{cid}-q", "contact.queued", c["created"], cid, queue_id=c["queue"]))
            out.append(ev(f"{cid}-a", "contact.abandoned", c["created"] + 1, cid, queue_id=c["queue"]))
        for k, (t, auto) in enumerate(c["replies"]):
            out.append(ev(f"{cid}-r{k}", "message.agent_replied", t, cid, agent_id="a", automated=auto))
        if c["resolved"] is not None:
            out.append(ev(f"{cid}-z", "contact.resolved", c["resolved"], cid))
        for k, (t, kind, score, scale) in enumerate(c["surveys"]):
            out.append(ev(f"{cid}-s{k}", "survey.responded", t, cid, survey=kind, score=float(score), scale_max=float(scale)))
        for k, (t, score) in enumerate(c["qa"]):
            out.append(ev(f"{cid}-k{k}", "qa.scored", t, cid, agent_id="a", score=float(score)))
    return sorted(out, key=Event.sort_key)


def pct(values: list[int], p: int):
    v = sorted(values)
    return None if not v else v[math.ceil(p * len(v) / 100) - 1] / 1000


def experience_reference(contacts) -> dict[tuple, dict]:
    rows: dict[tuple, dict] = defaultdict(lambda: {"frt": [], "ttr": [], "qa": []})

    def row(c, t):
        queue = c["queue"] if c["queue"] and t >= c["created"] else "none"
        return rows[(queue, c["channel"], format_ts(t - t % (15 * 60_000)))]

    for c in contacts:
        human = sorted((t, k) for k, (t, auto) in enumerate(c["replies"]) if not auto)
        if human:
            t = human[0][0]
            row(c, t)["frt"].append(t - c["created"])
        if c["resolved"] is not None:
            row(c, c["resolved"])["ttr"].append(c["resolved"] - c["created"])
        for t, _kind, _score, _scale in c["surveys"]:
            row(c, t)  # the answers themselves are checked from the raw data, per row
        for t, score in c["qa"]:
            row(c, t)["qa"].append(Fraction(score))
    out = {}
    for key, r in rows.items():
        out[key] = {
            "frt_seconds": {"p50": pct(r["frt"], 50), "p75": pct(r["frt"], 75), "p90": pct(r["frt"], 90), "count": len(r["frt"])},
            "ttr_seconds": {"p50": pct(r["ttr"], 50), "p75": pct(r["ttr"], 75), "p90": pct(r["ttr"], 90), "count": len(r["ttr"])},
            "qa": r["qa"],
        }
    return out


@PROFILE
@given(contacts=experiences())
def test_b_experience_interval_equals_reference(contacts):
    got = latest(feed(experience_events(contacts), engine()), "experience_interval")
    want = experience_reference(contacts)
    assert set(got) == set(want)
    # survey answers per row, on their own scale
    raw: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for c in contacts:
        for t, kind, score, scale in c["surveys"]:
            queue = c["queue"] or "none"
            raw[(queue, c["channel"], format_ts(t - t % (15 * 60_000)))][kind].append((score, scale))
    for key, w in want.items():
        r = got[key]
        assert r["frt_seconds"] == w["frt_seconds"] and r["ttr_seconds"] == w["ttr_seconds"], key
        answers = raw[key]
        csat = [sc >= m - 1 for sc, m in answers["csat"]]
        comp = [sc >= m - 1 for sc, m in answers["complaint"]]
        ces = [Fraction(sc, m) >= Fraction(5, 7) for sc, m in answers["ces"]]
        prom = [Fraction(sc, m) >= Fraction(9, 10) for sc, m in answers["nps"]]
        detr = [Fraction(sc, m) <= Fraction(6, 10) for sc, m in answers["nps"]]
        assert r["csat"] == {"value": sum(csat) / len(csat) if csat else None, "count": len(csat)}
        assert r["complaint_csat"] == {"value": sum(comp) / len(comp) if comp else None, "count": len(comp)}
        assert r["ces"] == {"value": sum(ces) / len(ces) if ces else None, "count": len(ces)}
        assert r["nps"]["count"] == len(prom)
        assert r["nps"]["value"] == (pytest.approx(100 * (sum(prom) - sum(detr)) / len(prom)) if prom else None)
        qa = w["qa"]
        assert r["qa_score"] == {"value": float(sum(qa) / len(qa)) if qa else None, "count": len(qa)}
        for name in ("csat", "ces", "complaint_csat"):
            assert r[name]["value"] is None or 0 <= r[name]["value"] <= 1
        assert r["nps"]["value"] is None or -100 <= r["nps"]["value"] <= 100


# ------------------------------------------------------------------------------ (c) agents

STATES = ("available", "busy", "acw", "away", "offline")


@st.composite
def timelines(draw):
    out = []
    for agent in ("a1", "a2"):
        for k in range(draw(st.integers(0, 8))):
            t = BASE + 1000 * draw(st.integers(0, 3 * 3600))
            out.append((agent, t, draw(st.sampled_from(STATES)), f"{agent}-{k:02d}"))
    return out


def agent_reference(changes, end_ms: int) -> dict[tuple, dict[str, int]]:
    iv = 15 * 60_000
    rows: dict[tuple, dict[str, int]] = {}
    for agent in sorted({a for a, *_ in changes}):
        tl = sorted((t, eid, s) for a, t, s, eid in changes if a == agent)
        first = tl[0][0] - tl[0][0] % iv
        last = end_ms - end_ms % iv
        for start in range(first, last + iv, iv):
            secs = defaultdict(int)
            for second in range(start, start + iv, 1000):
                now = [s for t, _e, s in tl if t <= second]
                if now:
                    secs[now[-1]] += 1
            changed = any(start <= t < start + iv for t, _e, _s in tl)
            if changed or any(v for s, v in secs.items() if s != "offline"):
                rows[(agent, None, format_ts(start))] = dict(secs)
    return rows


@PROFILE
@given(changes=timelines())
def test_c_agent_interval_equals_reference(changes):
    events = [ev(eid, "agent.state_changed", t, agent_id=a, state=s, queues=("Q1",)) for a, t, s, eid in changes]
    events.sort(key=Event.sort_key)
    end = max((t for _, t, _, _ in changes), default=BASE)
    got = latest(feed(events, engine()), "agent_interval")
    want = agent_reference(changes, end) if changes else {}
    assert set(got) == set(want)
    for key, secs in want.items():
        r = got[key]
        assert r["seconds_by_state"] == {s: float(secs.get(s, 0)) for s in STATES}, key
        handling = secs.get("busy", 0) + secs.get("acw", 0)
        staffed = sum(v for s, v in secs.items() if s != "offline")
        assert r["utilization"] == (pytest.approx(handling / staffed) if staffed else None)
        assert r["handled"] == 0 and r["aht_seconds"] is None


# ------------------------------------------------------------------------------ (d) order and duplicates

@PROFILE
@given(contacts=journeys(), more=experiences(), changes=timelines(), seed=st.integers(0, 2**32 - 1))
def test_d_order_within_lateness_and_duplicates_change_nothing(contacts, more, changes, seed):
    events = journey_events(contacts) + experience_events(more)
    events += [ev(eid, "agent.state_changed", t, agent_id=a, state=s, queues=("Q1",)) for a, t, s, eid in changes]
    events.sort(key=Event.sort_key)
    rng = random.Random(seed)
    base = canonical(feed(events, engine()))
    shuffled = sorted(events, key=lambda e: e.ts_ms + rng.randrange(LATENESS))
    noisy = shuffled + [e for e in events if rng.random() < 0.2]
    noisy.sort(key=lambda e: e.ts_ms + rng.randrange(LATENESS))
    assert canonical(feed(noisy, engine())) == base
