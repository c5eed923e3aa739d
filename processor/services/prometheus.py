"""A throw-away Prometheus server (Debian's ``prometheus``) that scrapes given targets."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ._proc import LocalServer, ServiceError, free_port, wait_for_port, wait_until

__all__ = ["PrometheusServer"]

DEFAULT_PROMETHEUS = "/usr/bin/prometheus"

# Talk to 127.0.0.1 directly, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _q(value: str) -> str:
    """A YAML scalar: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(value)


def _split_target(target: str) -> tuple[str, str, str]:
    """``host:port`` or ``http://host:port/path`` -> (scheme, host:port, metrics_path)."""
    if "://" not in target:
        return "http", target, "/metrics"
    u = urllib.parse.urlsplit(target)
    return u.scheme, u.netloc, u.path or "/metrics"


class PrometheusServer(LocalServer):
    """Prometheus on ``127.0.0.1:port`` scraping ``targets`` every ``scrape_interval``.

    ``targets`` are ``host:port`` strings (scraped at ``/metrics`` under job
    ``job_name``) or full URLs such as ``http://127.0.0.1:8000/custom``.
    ``rule_files`` are copied into the work folder and loaded. The config,
    TSDB and log (``prometheus.log``) live in ``work_dir``, by default a
    temporary folder removed by :meth:`stop`.
    """

    label = "Prometheus"
    log_name = "prometheus.log"
    work_prefix = "kpi-prometheus-"

    def __init__(
        self,
        targets: Iterable[str],
        port: int | None = None,
        scrape_interval: str = "1s",
        rule_files: Iterable[str | os.PathLike[str]] = (),
        *,
        evaluation_interval: str | None = None,
        job_name: str = "kpi",
        binary: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.targets = list(targets)
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.rule_files = [Path(p) for p in rule_files]
        self.job_name = job_name
        self.binary = binary or (DEFAULT_PROMETHEUS if os.path.exists(DEFAULT_PROMETHEUS)
                                 else shutil.which("prometheus") or DEFAULT_PROMETHEUS)
        super().__init__(work_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.url

    # -- config ----------------------------------------------------------------
    def config_yaml(self, rule_paths: Iterable[Path] = ()) -> str:
        lines = [
            "# Written by processor/services/prometheus.py",
            "global:",
            f"  scrape_interval: {_q(self.scrape_interval)}",
            f"  scrape_timeout: {_q(self.scrape_interval)}",
            f"  evaluation_interval: {_q(self.evaluation_interval)}",
        ]
        rule_paths = list(rule_paths)
        if rule_paths:
            lines.append("rule_files:")
            lines += [f"  - {_q(str(p))}" for p in rule_paths]
        jobs: dict[tuple[str, str], list[str]] = {}
        for t in self.targets:
            scheme, hostport, path = _split_target(t)
            jobs.setdefault((scheme, path), []).append(hostport)
        lines.append("scrape_configs:")
        if not jobs:
            lines[-1] = "scrape_configs: []"
        for i, ((scheme, path), hosts) in enumerate(jobs.items()):
            name = self.job_name if i == 0 else f"{self.job_name}-{i}"
            lines += [
                f"  - job_name: {_q(name)}",
                f"    scheme: {_q(scheme)}",
                f"    metrics_path: {_q(path)}",
                "    static_configs:",
                "      - targets: [" + ", ".join(_q(h) for h in hosts) + "]",
            ]
        return "\n".join(lines) + "\n"

    # -- lifecycle -------------------------------------------------------------
    def start(self, timeout: float = 30) -> "PrometheusServer":
        """Write the config, start Prometheus and wait until ``/-/ready`` answers 200."""
        if not self.running and not os.path.exists(self.binary):
            raise ServiceError(f"{self.binary} not found; run scripts/setup.sh (apt-get install prometheus)")
        return super().start(timeout)

    def _command(self) -> list[str]:
        rules_dir = self.work_dir / "rules"
        rule_paths = []
        for i, src in enumerate(self.rule_files):
            rules_dir.mkdir(exist_ok=True)
            dst = rules_dir / f"{i:02d}-{src.name}"
            shutil.copyfile(src, dst)
            rule_paths.append(dst)
        config = self.work_dir / "prometheus.yml"
        config.write_text(self.config_yaml(rule_paths))
        return [
            self.binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

    def _wait_ready(self, timeout: float) -> None:
        wait_for_port("127.0.0.1", self.port, timeout, process=self._proc)
        wait_until(self._ready, timeout, f"{self.url}/-/ready not OK", self._proc, interval=0.1)

    def _ready(self) -> bool:
        try:
            with _OPENER.open(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 15) -> None:
        super().stop(timeout)

    # -- HTTP API --------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises on an error status)."""
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with _OPENER.open(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            try:
                body = json.load(exc)
            except Exception:
                raise ServiceError(f"Prometheus {url}: HTTP {exc.code}") from exc
        if body.get("status") != "success":
            raise ServiceError(f"Prometheus {path} failed: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list:
        """Instant query; returns the result list (for a vector: ``[{'metric': {...}, 'value': [ts, 'v']}, ...]``)."""
        data = self.api("query", query=promql)
        result = data["result"]
        if data.get("resultType") in ("scalar", "string"):
            return [result]
        return result

    def wait_for(
        self,
        promql: str,
        predicate: Callable[[list], bool] = bool,
        timeout: float = 30,
        interval: float = 0.5,
    ) -> list:
        """Re-run ``promql`` until ``predicate(result)`` is true; return that result.

        Raises :class:`TimeoutError` (with the last result) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{promql!r} did not satisfy the predicate in {timeout}s; last: {result!r}")
            time.sleep(interval)

    def targets_health(self) -> list[dict]:
        """The active targets with their ``health`` and ``lastError``."""
        return self.api("targets")["activeTargets"]

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PrometheusServer {self.url} targets={self.targets} running={self.running}>"
