"""The simulator's customer profiles and feed traits (issue 19): who calls, and how the sources stamp events.

Shares are checked within 4 binomial standard deviations; the tail shape by its rank-frequency law.
"""
from __future__ import annotations

import collections
import json
import math

import pytest

from processor import cli
from processor.core.events import parse_ts_ms
from processor.core.settings import EngineSettings
from processor.simulator import (DEFAULT_MODEL, PLAIN_FEED, UNIFORM_CUSTOMERS, ModelError, Simulation,
                                 delivered_events, load_model_text, model_from_dict, model_to_dict, sorted_events)

START = parse_ts_ms("2026-11-23T20:00:00Z") / 1000  # crosses midnight in Paris and New York


def within(n: int, total: int, p: float, sds: float = 4.0) -> bool:
    return abs(n - total * p) <= sds * math.sqrt(total * p * (1 - p))


def crowd(customers: str, per_hour: int = 20_000, extra: str = "") -> str:
    """One queue nobody answers (every contact: created, queued, abandoned), no follow-ups: many arrivals fast."""
    return f"""
customers: {customers}
{extra}
queues:
  - queue: crowd
    arrivals_per_hour: {per_hour}
    agents: 0
    patience_seconds: 1
    repeat: null
    survey: null
    churn: null
    qa: null
    auto_reply_probability: 0
"""


def arrivals(sim: Simulation) -> list[dict]:
    sim.run()
    return [c for c in sim.contacts.values() if c["repeat_of"] is None]


@pytest.fixture(scope="module")
def day_pair():
    """One day of the built-in center, realistic and uniform, same seed."""
    real = Simulation(seed=5, start=START, duration_seconds=86400)
    uni = Simulation(seed=5, start=START, duration_seconds=86400, profile="uniform")
    return real.run(), uni.run()


# ------------------------------------------------------------------------------ profiles

def test_the_profile_changes_who_calls_not_the_center(day_pair):
    real, uni = day_pair
    settings = EngineSettings()
    assert real.truth(settings) == uni.truth(settings)
    assert real.segments == uni.segments and real.legs == uni.legs
    contact = lambda sim: [(ev["type"], t, ev["contact_id"]) for t, ev in sim.events() if "contact_id" in ev]  # noqa: E731
    assert contact(real) == contact(uni)
    # the same contacts, repeats and issues; only the customer ids differ
    assert [(c["repeat_of"], c["issue"], c["queue_id"]) for c in real.contacts.values()] == \
        [(c["repeat_of"], c["issue"], c["queue_id"]) for c in uni.contacts.values()]


def test_uniform_profile_is_the_simulator_before_issue_19(day_pair):
    _, uni = day_pair
    firsts = arrivals(uni)
    assert len({c["customer_id"] for c in firsts}) == len(firsts)  # a new customer per arrival
    events = [ev for _, ev in uni.events()]
    created = [ev for ev in events if ev["type"] == "contact.created"]
    assert all("issue" in ev for ev in created)
    assert all("automated" in ev for ev in events if ev["type"] == "message.agent_replied")
    times = [t for t, _ in uni.events()]
    assert times == sorted(times)  # one clock


def test_presence_events_are_stamped_early_by_a_skew_of_one_to_two_seconds(day_pair):
    real, uni = day_pair

    def presence(sim):
        out = collections.defaultdict(list)
        for t, ev in sim.events():
            if ev["type"] == "agent.state_changed":
                out[ev["agent_id"]].append((round(t * 1000), ev["state"]))
        return out

    plain, skewed = presence(uni), presence(real)
    assert plain.keys() == skewed.keys() and len(plain) > 40
    skews = set()
    for agent in plain:
        assert [s for _, s in plain[agent]] == [s for _, s in skewed[agent]], agent
        offsets = {a - b for (a, _), (b, _) in zip(plain[agent], skewed[agent])}
        assert len(offsets) == 1, agent  # one clock per agent source: its events keep their order
        skews |= offsets
    assert all(1000 <= s <= 2000 for s in skews) and len(skews) > 1
    # so an agent shows busy before the ACD's answer ends the queue segment
    answered = {ev["agent_id"]: t for t, ev in real.events() if ev["type"] == "contact.answered"}
    busy = {ev["agent_id"]: t for t, ev in real.events()
            if ev["type"] == "agent.state_changed" and ev["state"] == "busy"}
    assert any(busy[a] < answered[a] for a in answered)


def test_sorted_events_are_in_event_time_order_with_the_skew():
    events = sorted_events(Simulation(seed=3, start=START, duration_seconds=3600))
    times = [parse_ts_ms(ev["ts"]) for ev in events]
    assert times == sorted(times)


def test_missing_optional_fields(day_pair):
    real, _ = day_pair
    events = [ev for _, ev in real.events()]
    created = [ev for ev in events if ev["type"] == "contact.created"]
    assert within(sum("issue" not in ev for ev in created), len(created), real.feed.missing_issue)
    replies = [ev for ev in events if ev["type"] == "message.agent_replied"]
    assert not any(ev.get("automated") is False for ev in replies)
    assert any("automated" not in ev for ev in replies) and any(ev.get("automated") for ev in replies)


# ------------------------------------------------------------------------------ who calls

def test_built_in_shares_unidentified_and_busy_account(day_pair):
    real, _ = day_pair
    firsts = arrivals(real)
    c = DEFAULT_MODEL.customers
    who = collections.Counter(x["customer_id"] for x in firsts)
    assert c.placeholder == "0" and c.unidentified_share == 0.5
    assert within(who["0"], len(firsts), 0.5)
    [busy] = c.busy_accounts
    assert within(who[busy.customer_id], len(firsts), busy.share)
    # the placeholder is nobody: it never churns
    churned = [ev for _, ev in real.events() if ev["type"] == "customer.churned"]
    assert all(ev["customer_id"] != "0" for ev in churned)
    # retries and repeats keep their contact's customer, unidentified ones too
    for x in real.contacts.values():
        if x["repeat_of"]:
            assert x["customer_id"] == real.contacts[x["repeat_of"]]["customer_id"]


def test_busy_accounts_and_placeholder_get_their_shares():
    model = load_model_text(crowd("""
  unidentified_share: 0.3
  placeholder: anonymous
  busy_accounts: [{customer_id: acme, share: 0.2}, {customer_id: globex, share: 0.05}]"""))
    sim = Simulation(model, seed=2, start=START, duration_seconds=3600)
    firsts = arrivals(sim)
    assert len(firsts) > 15_000
    who = collections.Counter(x["customer_id"] for x in firsts)
    for cid, share in (("anonymous", 0.3), ("acme", 0.2), ("globex", 0.05)):
        assert within(who[cid], len(firsts), share), (cid, who[cid])
    rest = len(firsts) - who["anonymous"] - who["acme"] - who["globex"]
    assert within(rest, len(firsts), 0.45)


@pytest.mark.parametrize("exponent", [0.8, 1.2])
def test_identified_customers_follow_a_zipf_law(exponent):
    """Rank k gets a share k^-s / H: the top ranks within 4 sd, the log-log slope over ranks 1-30 near -s."""
    model = load_model_text(crowd(f"{{unidentified_share: 0, busy_accounts: [], population: 500, exponent: {exponent}}}"))
    firsts = arrivals(Simulation(model, seed=8, start=START, duration_seconds=3600))
    n = len(firsts)
    counts = collections.Counter(x["customer_id"] for x in firsts)
    h = sum(k ** -exponent for k in range(1, 501))
    for k in (1, 2, 3, 10):
        assert within(counts[f"cu-{k}"], n, k ** -exponent / h), (k, counts[f"cu-{k}"])
    xs = [math.log(k) for k in range(1, 31)]
    ys = [math.log(counts[f"cu-{k}"]) for k in range(1, 31)]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    assert slope == pytest.approx(-exponent, abs=0.1)
    assert set(counts) <= {f"cu-{k}" for k in range(1, 501)}


def test_built_in_tail_most_customers_once_a_few_very_often(day_pair):
    real, _ = day_pair
    contacts = collections.Counter(x["customer_id"] for x in real.contacts.values())
    del contacts["0"]
    for b in DEFAULT_MODEL.customers.busy_accounts:
        del contacts[b.customer_id]
    per_customer = sorted(contacts.values())
    ones = sum(1 for v in per_customer if v == 1)
    assert ones / len(per_customer) > 0.5  # most identified customers have one contact ...
    assert per_customer[-1] >= 50 * per_customer[len(per_customer) // 2]  # ... a few have many


# ------------------------------------------------------------------------------ determinism, model file

def test_same_seed_same_bytes_other_seed_other_customers():
    a = delivered_events(Simulation(seed=4, start=START, duration_seconds=4 * 3600))
    b = delivered_events(Simulation(seed=4, start=START, duration_seconds=4 * 3600))
    assert a == b
    c = delivered_events(Simulation(seed=5, start=START, duration_seconds=4 * 3600))
    who = lambda evs: [ev["customer_id"] for ev in evs if ev["type"] == "contact.created"]  # noqa: E731
    assert who(a) != who(c)
    # the identified customers are one customer base, whatever the seed: runs meet the same customers
    assert {x for x in who(a) if x.startswith("cu-")} & {x for x in who(c) if x.startswith("cu-")}


def test_customers_and_feed_in_the_model_file():
    text = crowd("{distribution: zipf, unidentified_share: 0.6, placeholder: 0, population: 1000, exponent: 1.3, "
                 "busy_accounts: [{customer_id: b1, share: 0.1}]}",
                 extra="feed: {agent_clock_skew: {distribution: uniform, min: 0.5, max: 1}, missing_issue: 0.2, "
                       "omit_defaults: false}")
    model = load_model_text(text)
    c, f = model.customers, model.feed
    assert (c.distribution, c.unidentified_share, c.placeholder, c.population, c.exponent) == ("zipf", 0.6, "0", 1000, 1.3)
    assert [(b.customer_id, b.share) for b in c.busy_accounts] == [("b1", 0.1)]
    assert (f.agent_clock_skew.a, f.agent_clock_skew.b, f.missing_issue, f.omit_defaults) == (0.5, 1.0, 0.2, False)
    assert model_from_dict(model_to_dict(model)) == model
    # left out: the built-in realistic defaults; `uniform` / `plain`: the simulator before issue 19
    plain = load_model_text(crowd("uniform", extra="feed: plain"))
    assert (plain.customers, plain.feed) == (UNIFORM_CUSTOMERS, PLAIN_FEED)
    default = load_model_text(crowd("null"))
    assert (default.customers, default.feed) == (DEFAULT_MODEL.customers, DEFAULT_MODEL.feed)
    a = delivered_events(Simulation(plain, seed=1, start=START, duration_seconds=600))
    b = delivered_events(Simulation(default, seed=1, start=START, duration_seconds=600, profile="uniform"))
    assert a == b


@pytest.mark.parametrize("customers, message", [
    ("{unidentified_share: 0.7, busy_accounts: [{customer_id: b, share: 0.4}]}", "at most 1"),
    ("{distribution: pareto}", "customers.distribution: must be zipf or uniform"),
    ("{busy_accounts: [{customer_id: '0', share: 0.1}]}", "not the placeholder"),
    ("{busy_accounts: [{customer_id: b, share: 0.1}, {customer_id: b, share: 0.1}]}", "its own"),
    ("{busy_accounts: [{customer_id: b}]}", "exactly customer_id and share"),
    ("{population: 0}", "customers.population"),
    ("{exponent: 0}", "customers.exponent: must be > 0"),
    ("{callers: 3}", "customers: unknown key(s) callers"),
])
def test_bad_customers_are_refused_by_name(customers, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model_text(crowd(customers))


def test_bad_feed_is_refused_by_name():
    with pytest.raises(ModelError, match="feed.missing_issue"):
        load_model_text(crowd("null", extra="feed: {missing_issue: 2}"))
    with pytest.raises(ModelError, match="feed: unknown"):
        load_model_text(crowd("null", extra="feed: {skew: 1}"))


def test_cli_profile_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("KPI_CONFIG", raising=False)
    out = {}
    for profile in ("realistic", "uniform"):
        path = tmp_path / f"{profile}.jsonl"
        assert cli.main(["simulate", "--output", str(path), "--hours", "2", "--seed", "3",
                         "--start", "2026-11-23T09:00:00Z", "--profile", profile]) == 0
        out[profile] = [json.loads(line) for line in path.read_text().splitlines()]
    ids = {p: collections.Counter(ev["customer_id"] for ev in evs if ev["type"] == "contact.created")
           for p, evs in out.items()}
    assert ids["realistic"]["0"] > 0.3 * sum(ids["realistic"].values())
    assert "0" not in ids["uniform"]
