"""The YAML model's whole-model groups: `customers` (who calls) and `feed` (how the sources stamp
and fill events); each key left out keeps its built-in default."""
from __future__ import annotations

from typing import Any

from .model import PLAIN_FEED, UNIFORM_CUSTOMERS, BusyAccount, CustomerModel, FeedModel, ModelError
from .parse_values import dist, num, prob

_CUSTOMER_KEYS = {"distribution", "unidentified_share", "placeholder", "population", "exponent", "busy_accounts"}


def parse_customers(v: Any) -> CustomerModel:
    """The `customers` mapping; each key left out keeps the built-in default (`uniform`: the old simulator)."""
    if v is None:
        return CustomerModel()
    if v == "uniform":
        return UNIFORM_CUSTOMERS
    _check_mapping(v, "customers", "uniform", _CUSTOMER_KEYS)
    kw: dict[str, Any] = {}
    if "distribution" in v:
        kw["distribution"] = v["distribution"]
    if "unidentified_share" in v:
        kw["unidentified_share"] = prob(v["unidentified_share"], "customers.unidentified_share")
    if "placeholder" in v:
        if not isinstance(v["placeholder"], (str, int)) or isinstance(v["placeholder"], bool):
            raise ModelError("customers.placeholder: a customer id (string)")
        kw["placeholder"] = str(v["placeholder"])
    if "population" in v:
        n = v["population"]
        if isinstance(n, bool) or not isinstance(n, int):
            raise ModelError("customers.population: an integer")
        kw["population"] = n
    if "exponent" in v:
        kw["exponent"] = num(v["exponent"], "customers.exponent", strict=True)
    if "busy_accounts" in v:
        accounts = v["busy_accounts"] or []
        if not isinstance(accounts, list):
            raise ModelError("customers.busy_accounts: a list of {customer_id, share}")
        out = []
        for i, a in enumerate(accounts):
            where = f"customers.busy_accounts[{i}]"
            if not isinstance(a, dict) or set(a) != {"customer_id", "share"}:
                raise ModelError(f"{where}: a mapping with exactly customer_id and share")
            if not isinstance(a["customer_id"], str):
                raise ModelError(f"{where}.customer_id: a string")
            out.append(BusyAccount(a["customer_id"], prob(a["share"], f"{where}.share")))
        kw["busy_accounts"] = tuple(out)
    return CustomerModel(**kw)


def parse_feed(v: Any) -> FeedModel:
    """The `feed` mapping; each key left out keeps the built-in default (`plain`: one clock, every field)."""
    if v is None:
        return FeedModel()
    if v == "plain":
        return PLAIN_FEED
    _check_mapping(v, "feed", "plain", {"agent_clock_skew", "missing_issue", "omit_defaults"})
    kw: dict[str, Any] = {}
    if "agent_clock_skew" in v:
        kw["agent_clock_skew"] = None if v["agent_clock_skew"] is None else dist(v["agent_clock_skew"],
                                                                                  "feed.agent_clock_skew")
    if "missing_issue" in v:
        kw["missing_issue"] = prob(v["missing_issue"], "feed.missing_issue")
    if "omit_defaults" in v:
        if not isinstance(v["omit_defaults"], bool):
            raise ModelError("feed.omit_defaults: true or false")
        kw["omit_defaults"] = v["omit_defaults"]
    return FeedModel(**kw)


def _check_mapping(v: Any, name: str, shortcut: str, keys: set[str]) -> None:
    """A whole-model group given as a mapping (or its one-word shortcut), with only its own keys."""
    if not isinstance(v, dict):
        raise ModelError(f"{name}: a mapping (or `{shortcut}`)")
    extra = set(v) - keys
    if extra:
        raise ModelError(f"{name}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
