"""Every PromQL expression of the Grafana dashboards runs against a real worker scraped by a real
Prometheus (which also loads and evaluates the alert rules), and the worker's exposition passes
`promtool check metrics`.

One worker (`kpi worker` on the session Apache Kafka, own topics and group) is fed the shared
scenario input (scenario.py: simulated queues sales/support, the hand-built queue billing, two bad
messages, one duplicate). The input is history (2026-03-02 09:00-10:30 UTC), so the worker's
windows end at the newest event time, 10:30: billing's five segments ended 10:00-10:04, inside its
60m and today windows but not its 5m or 15m windows. Panels on billing's 15-minute ratios and means
therefore have no sample (a ratio or mean with a zero denominator is absent by contract); they are
listed in EMPTY_FOR_BILLING with that reason, and are checked again with every queue selected
(the simulated queues have traffic up to 10:30), where they must return data.
"""
from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from processor.services import KpiWorker, PrometheusServer
from scenario import BAD_MESSAGES, latest, produce, settled, unique_topics

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "kpi-alerts.yml"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
DS = {"type": "prometheus", "uid": "${datasource}"}

# What Grafana would put in place of the template variables: queue "billing" (the hand-computed
# queue), every channel and worker ("All" = allValue ".*"), and the built-in interval variables.
BUILTINS = {"__rate_interval": "1m", "__interval": "5s", "__range": "5m", "__range_s": "300", "__range_ms": "300000"}
BILLING = {"queue": "billing", "channel": ".*", "instance": ".*", **BUILTINS}
ALL_QUEUES = {**BILLING, "queue": ".*"}

_WHY_15M = "billing's segments ended 10:00-10:04, outside its 15m window ending 10:30: no sample (zero denominator)"
# (dashboard uid, panel title, refId) -> why the expression returns nothing with queue="billing".
EMPTY_FOR_BILLING = {
    ("kpi-queue-wallboard", "Service level 15m", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "Service level − target (15m)", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "ASA 15m", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "Abandon rate 15m", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "AHT 15m", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "Service level (15m, answered / offered) vs target", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "ASA and max wait (15m)", "A"): _WHY_15M,
    ("kpi-queue-wallboard", "ASA and max wait (15m)", "B"): _WHY_15M,
    ("kpi-queue-wallboard", "Projected service level this interval (worst / best) vs target", "A"):
        "nothing of billing ended in the interval holding the clock and nobody waits: no denominator",
    ("kpi-queue-wallboard", "Agents required (Erlang C / Erlang A) vs staffed", "A"):
        "no billing leg ended in its 30-minute staffing window: no AHT, no staffing figure",
    ("kpi-queue-wallboard", "Staffing gap (required − staffed), Erlang A", "A"):
        "no billing leg ended in its 30-minute staffing window: no AHT, no staffing figure",
    ("kpi-queue-wallboard", "annotation: KPI alerts firing", "annotation"):
        "no alert is firing: every `for:` is longer than the test runs (KpiDataStale is only pending)",
}
# Empty with every queue selected as well.
EMPTY_FOR_ALL = {("kpi-queue-wallboard", "annotation: KPI alerts firing", "annotation")}


# ------------------------------------------------------------------------------------ dashboard helpers
def load(path: Path) -> dict:
    return json.loads(path.read_text())


def walk_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))  # panels inside (collapsed) rows


def queries(dashboard: dict) -> list[tuple[tuple[str, str, str], str, str]]:
    """((uid, panel title, refId), expr, kind) for every PromQL expression of a dashboard; kind is
    'instant' or 'range' for panel targets (as the target asks), 'annotation' for annotation queries."""
    out = []
    for panel in walk_panels(dashboard["panels"]):
        for t in panel.get("targets", []):
            kind = "instant" if t.get("instant") and not t.get("range") else "range"
            out.append(((dashboard["uid"], panel["title"], t["refId"]), t["expr"], kind))
    for a in dashboard["annotations"]["list"]:
        if a.get("expr"):
            out.append(((dashboard["uid"], f"annotation: {a['name']}", "annotation"), a["expr"], "annotation"))
    return out


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"no test value for template variable ${name} in {expr!r}")
        return values[name]
    return _VAR.sub(one, expr)


def all_queries():
    return [q for path in DASHBOARDS for q in queries(load(path))]


# ------------------------------------------------------------------------------------ static checks
def test_dashboards_are_provisioned_and_use_the_datasource_variable():
    assert {p.name for p in DASHBOARDS} == {"queue-wallboard.json", "agents.json", "processor-health.json"}
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert len(datasource) == 1 and datasource[0]["type"] == "prometheus" and datasource[0]["isDefault"]
    uid = datasource[0]["uid"]
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "contact-kpi.yml").read_text())["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["volumes"]}
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning/datasources"] == "./deploy/grafana/provisioning/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./deploy/grafana/provisioning/dashboards"
    home = compose["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/") and (DASHBOARD_DIR / Path(home).name).is_file()

    uids = set()
    for path in DASHBOARDS:
        d = load(path)
        assert d["uid"] not in uids
        uids.add(d["uid"])
        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds_var = variables["datasource"]
        assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
        assert ds_var["current"]["value"] == uid, path.name
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"] == DS, (path.name, v["name"])
                assert v["definition"].startswith("label_values("), (path.name, v["name"])
                assert v["query"] == v["definition"], (path.name, v["name"])
        if path.name != "processor-health.json":
            assert variables["queue"]["definition"] == "label_values(contact_queue_waiting, queue)"
            assert variables["queue"]["includeAll"] and variables["queue"]["allValue"] == ".*"
        ids = [p["id"] for p in walk_panels(d["panels"])]
        assert len(ids) == len(set(ids)), path.name
        for panel in walk_panels(d["panels"]):
            if panel["type"] == "row":
                assert not panel.get("targets"), panel["title"]
                continue
            assert panel["datasource"] == DS, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            for t in panel["targets"]:
                assert t["datasource"] == DS, (path.name, panel["title"], t["refId"])
                assert t["expr"].strip(), (path.name, panel["title"], t["refId"])
        for a in d["annotations"]["list"]:
            if not a.get("builtIn"):
                assert a["datasource"] == DS, (path.name, a["name"])
        # every expression's variables have a test value (and so are ones the dashboard defines)
        for key, expr, _ in queries(d):
            used = {m.group(1) or m.group(2) for m in _VAR.finditer(expr)} - set(BUILTINS)
            assert used <= set(variables), (key, used)
            substitute(expr, BILLING)


def test_the_expected_empty_panels_exist():
    keys = [key for key, _, _ in all_queries()]
    assert len(keys) == len(set(keys)), "two targets share a dashboard, panel title and refId"
    keys = set(keys)
    assert set(EMPTY_FOR_BILLING) <= keys, set(EMPTY_FOR_BILLING) - keys


# ------------------------------------------------------------------------------------ live worker + Prometheus
@pytest.fixture(scope="module")
def live(kafka, feed, tmp_path_factory):
    """A worker fed the scenario, settled, and a Prometheus (job contact-kpi, 1 s scrapes, alert rules) that saw it."""
    env = unique_topics()
    valid = sum(1 for line in feed["lines"] if line not in BAD_MESSAGES)
    records = len(latest(feed["rollups"]))
    asyncio.run(produce(kafka.bootstrap, env["KPI_KAFKA__INPUT_TOPIC"], feed["events"], BAD_MESSAGES))
    worker = KpiWorker(kafka.bootstrap, work_dir=tmp_path_factory.mktemp("dash-worker"), config=feed["config"], env=env)
    prom = PrometheusServer([f"127.0.0.1:{worker.port}"], scrape_interval="1s", evaluation_interval="1s",
                            rule_files=[RULES], job_name="contact-kpi",
                            work_dir=tmp_path_factory.mktemp("dash-prometheus"))
    t0 = time.monotonic()
    with prom, worker:
        samples = worker.wait_for(lambda s: settled(s, valid, records), timeout=120,
                                  what=f"{valid} events processed, {records} rollups published, no lag")
        published = samples["kpi_rollups_published_total"]
        prom.wait_for("kpi_rollups_published_total", lambda r: bool(r) and float(r[0]["value"][1]) == published)
        # rate() needs two samples in its range: a worker that settles within one scrape gives one
        prom.wait_for("count_over_time(kpi_rollups_published_total[1m])",
                      lambda r: bool(r) and float(r[0]["value"][1]) >= 2)
        # the rules were evaluated on the scraped data: the input is months old, so KpiDataStale is pending
        prom.wait_for('ALERTS{alertname="KpiDataStale", alertstate="pending"}', timeout=15)
        with urllib.request.urlopen(worker.url + "/metrics", timeout=5) as resp:
            exposition = resp.read().decode()
        print(f"\nworker settled and scraped in {time.monotonic() - t0:.1f}s")
        yield worker, prom, exposition


def _values(result: list) -> list:
    return [r for r in result if isinstance(r, dict)]


def test_every_panel_expression_is_accepted_and_returns_data(live):
    _worker, prom, _ = live
    empty_billing, report = {}, []
    for key, expr, kind in all_queries():
        promql = substitute(expr, BILLING)
        result = prom.query(promql)  # raises ServiceError if Prometheus rejects the expression
        if kind == "range":
            now = time.time()
            prom.api("query_range", query=promql, start=str(now - 60), end=str(now), step="5")
        if not _values(result):
            empty_billing[key] = promql
        report.append(f"{'EMPTY' if not result else len(result):>5}  {key[0]} / {key[1]} / {key[2]}")
    print("\nseries per expression with queue=billing:\n" + "\n".join(report))

    assert set(empty_billing) == set(EMPTY_FOR_BILLING), (
        f"unexpectedly empty: {sorted(set(empty_billing) - set(EMPTY_FOR_BILLING))}; "
        f"expected empty but has data: {sorted(set(EMPTY_FOR_BILLING) - set(empty_billing))}")

    # The same expressions with every queue selected: data, except what is empty by design.
    for key, expr, _ in all_queries():
        if key in EMPTY_FOR_BILLING:
            result = prom.query(substitute(expr, ALL_QUEUES))
            if key in EMPTY_FOR_ALL:
                assert not result, (key, result)
            else:
                assert _values(result), (key, substitute(expr, ALL_QUEUES))
    print("empty with queue=billing (and why):\n" + "\n".join(f"  {k[1]} [{k[2]}]: {why}" for k, why in EMPTY_FOR_BILLING.items()))


def test_template_variables_resolve(live):
    _worker, prom, _ = live
    for path in DASHBOARDS:
        for v in load(path)["templating"]["list"]:
            if v["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["definition"])
            assert m, v["definition"]
            selector, label = substitute(m.group(1), BILLING), m.group(2)
            values = prom.api(f"label/{label}/values", **{"match[]": selector})
            assert values, (path.name, v["name"])
            if label == "queue":
                assert {"billing", "sales", "support"} <= set(values)


def test_alert_rules_load_and_evaluate_without_errors(live):
    _worker, prom, _ = live
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["name"] for r in rules} == {
        "KpiServiceLevelBelowTarget", "KpiLongestWaitHigh", "KpiAbandonSpike", "KpiProcessorLagHigh",
        "KpiDataStale", "KpiWorkerDown", "KpiDeadLettersGrowing", "KpiContactsAboutToBreach", "KpiStaffingGap"}
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    stale = next(r for r in rules if r["name"] == "KpiDataStale")
    assert stale["state"] == "pending" and stale["alerts"][0]["labels"]["job"] == "contact-kpi"
    assert next(r for r in rules if r["name"] == "KpiWorkerDown")["state"] == "inactive"


def test_promtool_check_metrics_on_a_live_scrape(live):
    _worker, _prom, exposition = live
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run scripts/setup.sh (apt-get install prometheus)"
    assert "contact_queue_waiting{" in exposition and "kpi_events_processed_total" in exposition
    proc = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    problems = (proc.stdout + proc.stderr).strip()
    print(f"\npromtool check metrics: exit {proc.returncode}, {len(exposition.splitlines())} lines checked"
          + (f"\n{problems}" if problems else ", no problems"))
    assert proc.returncode == 0 and not problems, problems
