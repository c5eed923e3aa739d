"""deploy/prometheus/rules: the alert rules are valid, carry what on-call needs, and pass their
promtool unit tests (deploy/prometheus/rules/kpi-alerts.test.yml), which cover every alert.

promtool comes with Debian's prometheus package, installed by scripts/setup.sh: when it is
missing these tests fail (they do not skip).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
RULES = PROM_DIR / "rules" / "kpi-alerts.yml"
RULE_TESTS = PROM_DIR / "rules" / "kpi-alerts.test.yml"
CONFIG = PROM_DIR / "prometheus.yml"


def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None)
    assert path, "promtool not found: run scripts/setup.sh (apt-get install prometheus)"
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def rule_tests() -> list[dict]:
    return yaml.safe_load(RULE_TESTS.read_text())["tests"]


def test_promtool_check_rules():
    proc = run_promtool("check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in proc.stdout + proc.stderr


def test_promtool_test_rules():
    proc = run_promtool("test", "rules", str(RULE_TESTS))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "SUCCESS" in out and "FAILED" not in out, out


def test_prometheus_config_loads_the_rules_file():
    """The compose Prometheus config names the rules file (relative to itself) and is valid."""
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules/kpi-alerts.yml"]
    proc = run_promtool("check", "config", str(CONFIG))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 rule files found" in out and f"SUCCESS: {len(alerts())} rules found" in out, out


def test_compose_mounts_the_rules_where_the_config_points():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prom = compose["services"]["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]


EXPECTED_ALERTS = {"KpiServiceLevelBelowTarget", "KpiLongestWaitHigh", "KpiAbandonSpike", "KpiProcessorLagHigh",
                   "KpiDataStale", "KpiWorkerDown", "KpiDeadLettersGrowing", "KpiContactsAboutToBreach", "KpiStaffingGap"}


def test_every_alert_has_for_severity_and_text_for_on_call():
    rules = alerts()
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(notes), name
        if name != "KpiWorkerDown":  # up == 0: the value says nothing
            assert "$value" in notes["summary"] and "$value" in notes["description"], name
        if "queue" in rule["expr"] and name.startswith(("KpiServiceLevel", "KpiLongestWait", "KpiAbandon")):
            assert "$labels.queue" in notes["summary"] and "$labels.queue" in notes["description"], name


def test_thresholds_are_visible_in_the_rule():
    by_name = {r["alert"]: r for r in alerts()}
    wait = by_name["KpiLongestWaitHigh"]
    assert "> 120" in wait["expr"] and wait["for"] == "2m" and wait["labels"]["threshold"] == "120s"
    assert "120" in wait["annotations"]["summary"]
    sl = by_name["KpiServiceLevelBelowTarget"]
    assert 'window="15m", formula="answered_over_offered"' in sl["expr"]
    assert "contact_queue_service_level_target_ratio" in sl["expr"] and "contact_queue_offered" in sl["expr"]
    spike = by_name["KpiAbandonSpike"]
    assert ">= 0.10" in spike["expr"] and "2 * max" in spike["expr"] and 'window="60m"' in spike["expr"]
    assert "sum by (topic) (kpi_consumer_lag_messages) > 1000" in by_name["KpiProcessorLagHigh"]["expr"]
    assert "kpi_last_event_age_seconds" in by_name["KpiDataStale"]["expr"]
    assert "up{" in by_name["KpiWorkerDown"]["expr"] and "== 0" in by_name["KpiWorkerDown"]["expr"]
    assert "rate(kpi_events_dead_lettered_total" in by_name["KpiDeadLettersGrowing"]["expr"]
    breach = by_name["KpiContactsAboutToBreach"]
    assert "contact_queue_at_risk) > 0" in breach["expr"] and 'bound="worst"' in breach["expr"]
    assert "contact_queue_service_level_target_ratio" in breach["expr"] and breach["for"] == "1m"
    gap = by_name["KpiStaffingGap"]
    assert 'contact_queue_staffing_gap_agents{model="erlang_a"}) > 2' in gap["expr"] and gap["for"] == "15m"
    assert gap["labels"]["threshold"] == "2 agents"


def test_every_alert_is_unit_tested_firing_and_not_firing():
    """Each alert has at least one case where it fires (with labels and annotations) and one where it must not."""
    fires: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for case in rule_tests():
        for check in case.get("alert_rule_test", []):
            name = check["alertname"]
            expected = check.get("exp_alerts") or []
            if expected:
                fires[name] = fires.get(name, 0) + 1
                for alert in expected:
                    assert "severity" in alert["exp_labels"], (case["name"], name)
                    assert {"summary", "description", "runbook"} <= set(alert["exp_annotations"]), (case["name"], name)
            else:
                quiet[name] = quiet.get(name, 0) + 1
    assert set(fires) == EXPECTED_ALERTS, f"alerts never shown firing: {EXPECTED_ALERTS - set(fires)}"
    assert set(quiet) == EXPECTED_ALERTS, f"alerts without a near-miss case: {EXPECTED_ALERTS - set(quiet)}"

