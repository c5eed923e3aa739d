"""Who calls in a benchmark log: the simulated center's customer profile (realistic or uniform, the
busy account's share) and the reading of a log's profile (placeholder share, busiest account in W)."""
from __future__ import annotations

from processor.core.events import parse_ts_ms
from processor.simulator import DEFAULT_MODEL, BusyAccount, Model, with_profile

from .report import TARGETS


RECONTACT_WINDOW_MS = 7 * 86_400_000     # the default recontact window W


PROFILES = ("realistic", "uniform")


BENCH_UNIDENTIFIED = 0.55  # issue 19's realistic log: >= 50 % of the contacts under one placeholder id


BENCH_BUSY_SHARE = 0.38    # one account: >= 20,000 contacts in 7 days from about 500,000 events on


def bench_model(profile: str, busy_share: float = BENCH_BUSY_SHARE) -> Model:
    """The built-in center (the same queues, agents and arrivals under both profiles) with issue 19's
    benchmark customers: `realistic` = 55 % unidentified under id `0`, one business account with
    `busy_share` of the new contacts, Zipf-distributed identified customers for the rest, and the
    built-in feed traits (presence clock skew, missing optional fields); `uniform` = a new customer
    per contact, the simulator of the figures published before issue 19."""
    from dataclasses import replace

    customers = replace(DEFAULT_MODEL.customers, unidentified_share=BENCH_UNIDENTIFIED,
                        busy_accounts=(BusyAccount("biz-1", busy_share),) if busy_share > 0 else ())
    return with_profile(Model(DEFAULT_MODEL.queues, customers, DEFAULT_MODEL.feed), profile)


def distinct_customers(events: list[dict]) -> list[dict]:
    """The same log with a distinct customer per contact (and per churn): no customer has two contacts."""
    out = []
    for ev in events:
        if "customer_id" in ev:
            ev = dict(ev)
            ev["customer_id"] = f"d-{ev.get('contact_id') or ev['event_id']}"
        out.append(ev)
    return out


def log_profile(events: list[dict], placeholder: str = "0") -> dict:
    """Who the contacts of a log come from: the placeholder's share, the busiest identified account and its
    most contacts inside one recontact window (7 days), and the tail of the identified customers."""
    import collections

    seen: set[str] = set()
    times: dict[str, list[int]] = collections.defaultdict(list)
    contacts = 0
    for ev in events:
        if ev["type"] == "contact.created" and ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            times[ev["customer_id"]].append(parse_ts_ms(ev["ts"]))
            contacts += 1
    unidentified = len(times.get(placeholder, ()))
    identified = {c: t for c, t in times.items() if c != placeholder}
    busiest, in_window = None, 0
    for c, ts in identified.items():
        if len(ts) <= in_window:
            continue
        ts.sort()
        lo = best = 0
        for hi, t in enumerate(ts):  # the densest window [t - W, t]
            while t - ts[lo] >= RECONTACT_WINDOW_MS:
                lo += 1
            best = max(best, hi - lo + 1)
        if best > in_window:
            busiest, in_window = c, best
    counts = sorted((len(t) for t in identified.values()), reverse=True)
    share = unidentified / contacts if contacts else None
    return {"contacts": contacts, "events": len(events), "placeholder": placeholder,
            "placeholder_contacts": unidentified, "placeholder_share": share,
            "identified_customers": len(identified),
            "identified_with_one_contact_share": (sum(1 for n in counts if n == 1) / len(counts)) if counts else None,
            "top_identified_contacts": counts[:5], "busiest_account": busiest,
            "busiest_account_contacts_in_7_days": in_window,
            "meets_issue_19_log": bool(share is not None and share >= TARGETS["placeholder_share"]
                                       and in_window >= TARGETS["busy_account_contacts"])}


def profile_text(lp: dict) -> str:
    share = lp["placeholder_share"]
    return (f"{lp['contacts']:,} contacts, {share * 100 if share is not None else 0:.1f}% under id "
            f"{lp['placeholder']!r}, busiest account {lp['busiest_account']} with "
            f"{lp['busiest_account_contacts_in_7_days']:,} contacts in 7 days, {lp['identified_customers']:,} "
            f"identified customers (top {lp['top_identified_contacts']}, "
            f"{(lp['identified_with_one_contact_share'] or 0) * 100:.0f}% with one contact)")
