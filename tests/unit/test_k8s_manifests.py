"""deploy/k8s: the Kubernetes manifests parse, carry what a cluster needs (replicas, probes, resources,
scrape annotations, headless Service, PodDisruptionBudget), and agree with the code: the image's
ENTRYPOINT (`kpi`) and its subcommands, the HTTP routes the probes call, and the KPI_* settings
(checked the way tests/unit/test_config.py checks docker-compose.yml)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from processor import cli
from processor.config import KafkaConfig, QueueConfig, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No KPI_* variable from the caller's shell (as in test_config.py)."""
    for name in list(os.environ):
        if name.upper().startswith("KPI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KPI_CONFIG", "unused")
    monkeypatch.delenv("KPI_CONFIG")


# ------------------------------------------------------------------------------------ loading
def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.y*ml") if p.name != "kustomization.yaml")


def documents() -> list[dict]:
    docs = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append(doc)
    return docs


def objects(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def one(kind: str) -> dict:
    found = list(objects(kind).values())
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def workloads() -> dict[str, dict]:
    return {**objects("StatefulSet"), **objects("Deployment")}


def containers() -> list[tuple[str, dict]]:
    return [(name, c) for name, w in workloads().items() for c in w["spec"]["template"]["spec"]["containers"]]


def container_env(c: dict) -> dict[str, str]:
    """The container's environment: envFrom ConfigMaps first, then `env` (which wins, as in Kubernetes)."""
    maps = objects("ConfigMap")
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in maps, f"envFrom references a missing ConfigMap {ref}"
        env.update({k: str(v) for k, v in maps[ref]["data"].items()})
    for var in c.get("env", []):
        env[var["name"]] = str(var.get("value", ""))
    return env


def worker() -> tuple[dict, dict]:
    sts = one("StatefulSet")
    return sts, sts["spec"]["template"]["spec"]["containers"][0]


def wallboard() -> tuple[dict, dict]:
    dep = objects("Deployment")["contact-kpi-wallboard"]
    return dep, dep["spec"]["template"]["spec"]["containers"][0]


def dockerfile_entrypoint() -> list[str]:
    m = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), flags=re.M)
    assert m, "Dockerfile has no exec-form ENTRYPOINT"
    return json.loads(m.group(1))


def port_number(c: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p["name"] == port)


# ------------------------------------------------------------------------------------ structure
def test_every_manifest_parses_and_is_namespace_agnostic():
    docs = documents()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget", "Deployment"}
    for d in docs:
        assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), d
        assert "namespace" not in d["metadata"], f"{d['kind']}/{d['metadata']['name']} pins a namespace"
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == "contact-kpi", d["metadata"]["name"]


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "namespace" not in kustomization
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())


def test_workloads_select_their_own_pods():
    for name, w in workloads().items():
        selector = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    worker_labels = worker()[0]["spec"]["template"]["metadata"]["labels"]
    wallboard_labels = wallboard()[0]["spec"]["template"]["metadata"]["labels"]
    assert not (worker_labels.items() >= wallboard()[0]["spec"]["selector"]["matchLabels"].items())
    assert not (wallboard_labels.items() >= worker()[0]["spec"]["selector"]["matchLabels"].items())


def test_worker_statefulset():
    sts, c = worker()
    assert sts["apiVersion"] == "apps/v1"
    assert sts["spec"]["replicas"] == 2
    pod = sts["spec"]["template"]
    # scrape annotations point at the port the worker serves /metrics on
    notes = pod["metadata"]["annotations"]
    env = container_env(c)
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/path"] == "/metrics"
    assert int(notes["prometheus.io/port"]) == int(env["KPI_WEB_PORT"]) == port_number(c, "http-metrics")
    assert env["KPI_WEB_HOST"] == "0.0.0.0"
    # every pod gets the settings file named by KPI_CONFIG from the settings ConfigMap
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert set(mounts) <= set(volumes)
    settings_volume = next(v for v in volumes.values() if "configMap" in v)
    settings_map = objects("ConfigMap")[settings_volume["configMap"]["name"]]
    mount = mounts[settings_volume["name"]]
    assert Path(env["KPI_CONFIG"]).parent == Path(mount["mountPath"])
    assert Path(env["KPI_CONFIG"]).name in settings_map["data"]
    assert any(Path(m["mountPath"]) == Path(env["KPI_DATA_DIR"]) for m in mounts.values())


@pytest.mark.parametrize("which", ["worker", "wallboard"])
def test_probes_and_resources(which):
    _w, c = worker() if which == "worker" else wallboard()
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz", (which, probe)
        assert port_number(c, get["port"]) in {p["containerPort"] for p in c["ports"]}, (which, probe)
    res = c["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[kind]), (which, kind)
    assert _memory_bytes(res["requests"]["memory"]) <= _memory_bytes(res["limits"]["memory"])
    assert _cpu_millis(res["requests"]["cpu"]) <= _cpu_millis(res["limits"]["cpu"])


def _memory_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)([KMG]i?)?", text)
    assert m, text
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def _cpu_millis(text) -> int:
    text = str(text)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


def test_headless_service_selects_the_workers():
    sts, c = worker()
    svc = objects("Service")[sts["spec"]["serviceName"]]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    port = svc["spec"]["ports"][0]
    assert port_number(c, port["targetPort"]) == port["port"] == port_number(c, "http-metrics")


def test_pod_disruption_budget_keeps_a_worker():
    sts, _ = worker()
    pdb = one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    replicas = sts["spec"]["replicas"]
    if "maxUnavailable" in pdb["spec"]:
        allowed = pdb["spec"]["maxUnavailable"]
    else:
        allowed = replicas - pdb["spec"]["minAvailable"]
    assert 1 <= allowed < replicas  # a node can be drained, and a worker always stays


def test_wallboard_deployment_and_service():
    dep, c = wallboard()
    assert dep["apiVersion"] == "apps/v1" and dep["spec"]["replicas"] >= 1
    env = container_env(c)
    assert env["KPI_REDIS_URL"].startswith("redis://")
    assert container_env(worker()[1])["KPI_REDIS_URL"] == env["KPI_REDIS_URL"]  # the workers write what it reads
    svc = objects("Service")["contact-kpi-wallboard"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert port_number(c, svc["spec"]["ports"][0]["targetPort"]) == 8080


# ------------------------------------------------------------------------------------ agreement with the code
def test_image_and_command_match_the_dockerfile():
    entrypoint = dockerfile_entrypoint()
    assert entrypoint == ["kpi"]
    compose_image = yaml.safe_load(COMPOSE.read_text())["services"]["processor-1"]["image"]
    uid = int(re.search(r"useradd .*--uid (\d+)", DOCKERFILE.read_text()).group(1))
    for name, c in containers():
        assert c.get("command", entrypoint) == entrypoint, f"{name}: command overrides the image's ENTRYPOINT kpi"
        assert c["image"].split(":")[0] == compose_image.split(":")[0], name
        pod_security = workloads()[name]["spec"]["template"]["spec"]["securityContext"]
        assert pod_security["runAsUser"] == uid and pod_security["runAsNonRoot"], name


def test_container_args_are_kpi_subcommands(monkeypatch):
    """Each container's args run through the real `kpi` parser, reaching the right command with the right port."""
    seen = []
    for fn in ("cmd_replay", "cmd_worker", "cmd_simulate", "cmd_produce", "cmd_run", "cmd_wallboard"):
        if hasattr(cli, fn):
            monkeypatch.setattr(cli, fn, lambda args, fn=fn: seen.append((fn, args)) or 0)
    for name, c in containers():
        assert cli.main([str(a) for a in c["args"]]) == 0, name
    by_fn = {fn: args for fn, args in seen}
    assert set(by_fn) == {"cmd_worker", "cmd_wallboard"}, "kpi worker and kpi wallboard"
    _dep, wb = wallboard()
    assert by_fn["cmd_wallboard"].port == port_number(wb, "http") == 8080
    assert by_fn["cmd_wallboard"].host == "0.0.0.0"


def _routes(command: str) -> set[str]:
    """HTTP paths served by `kpi <command>`: Faust pages of processor/worker/web.py, aiohttp routes of the wallboard."""
    if command == "worker":
        return set(re.findall(r'app\.page\("([^"]+)"', (ROOT / "processor" / "worker" / "web.py").read_text()))
    if command == "wallboard":
        text = "".join(p.read_text() for p in (ROOT / "processor" / "wallboard").glob("*.py"))
        return set(re.findall(r'add_get\("([^"]+)"', text))
    raise AssertionError(f"no route table for kpi {command}")


def test_probe_paths_are_served_by_the_command():
    assert {"/metrics", "/healthz"} <= _routes("worker")
    for name, c in containers():
        routes = _routes(c["args"][0])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["path"] in routes, (name, probe, routes)
    notes = worker()[0]["spec"]["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/path"] in _routes("worker")


def _setting_names() -> tuple[set[str], dict[str, set[str]]]:
    top = set(Settings.model_fields) | {"config"}
    nested = {"kafka": set(KafkaConfig.model_fields), "defaults": set(QueueConfig.model_fields)}
    return top, nested


def test_every_env_name_is_a_setting():
    top, nested = _setting_names()
    names = set()
    for cm in objects("ConfigMap").values():
        if any(k.startswith("KPI_") for k in cm["data"]):
            names |= set(cm["data"])
    for _name, c in containers():
        names |= {v["name"] for v in c.get("env", [])}
    assert names
    for var in sorted(names):
        assert var.startswith("KPI_"), var
        head, *rest = var[4:].lower().split("__")
        assert head in top, var
        if rest:
            assert head in nested and rest[0] in nested[head], var


@pytest.mark.parametrize("which", ["worker", "wallboard"])
def test_container_environment_loads(which, monkeypatch, tmp_path):
    """The settings each container starts with are valid: its environment plus the mounted settings file."""
    _w, c = worker() if which == "worker" else wallboard()
    env = container_env(c)
    settings_map = next(cm for cm in objects("ConfigMap").values() if Path(env["KPI_CONFIG"]).name in cm["data"])
    config = tmp_path / Path(env["KPI_CONFIG"]).name
    config.write_text(settings_map["data"][config.name])
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("KPI_CONFIG", str(config))  # mounted at env["KPI_CONFIG"] in the pod
    s = load_settings()
    assert s.kafka.bootstrap == env["KPI_KAFKA__BOOTSTRAP"]
    assert s.redis_url is not None
    assert set(s.queues) == {"sales", "support"}
    # the same queues as the compose example file
    example = load_settings(ROOT / "deploy" / "config" / "queues.example.yaml")
    assert s.engine().queues == example.engine().queues
    if which == "worker":
        assert s.web_host == "0.0.0.0" and s.web_port == 6066
