"""A `kpi worker` as a child process on 127.0.0.1: what `kpi run`, the tests and benchmarks start."""
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ._proc import ManagedProcess, ServiceError, free_port

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series_key(name: str, labels: dict[str, str]) -> str:
    """'name{a="1",b="2"}' with labels sorted by name: one spelling per series."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def parse_metrics(text: str) -> dict[str, float]:
    """Exposition text -> {series_key: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[series_key(m.group(1), dict(_LABEL.findall(m.group(2) or "")))] = float(m.group(3))
    return out


class KpiWorker:
    """One processor worker reading ``bootstrap``; extra settings go in as KPI_* environment variables."""

    def __init__(self, bootstrap: str, *, port: int | None = None, work_dir: str | os.PathLike[str] | None = None,
                 config: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="kpi-worker-"))
        self.env = {"KPI_KAFKA__BOOTSTRAP": bootstrap, "KPI_WEB_PORT": str(self.port),
                    "KPI_WEB_HOST": "127.0.0.1", "KPI_DATA_DIR": str(self.work_dir / "data"), **(env or {})}
        if config is not None:
            self.env["KPI_CONFIG"] = str(config)
        self.log_path = self.work_dir / "worker.log"
        self._proc = ManagedProcess([sys.executable, "-m", "processor.cli", "worker", "--loglevel", "info"],
                                    self.log_path, name="kpi-worker", env=self.env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc.running

    @property
    def pid(self) -> int | None:
        """Process id of the worker (None before start)."""
        return self._proc.pid

    def start(self, timeout: float = 60) -> "KpiWorker":
        self._proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._proc.running:
                raise ServiceError(f"kpi worker exited with {self._proc.returncode}:\n{self._proc.log_tail()}")
            try:
                self.scrape()
                return self
            except OSError:
                time.sleep(0.3)
        raise ServiceError(f"kpi worker did not serve /metrics within {timeout:.0f}s:\n{self._proc.log_tail()}")

    def scrape(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as resp:
            return parse_metrics(resp.read().decode())

    def wait_for(self, predicate, timeout: float = 120, what: str = "condition") -> dict[str, float]:
        """Scrape until ``predicate(samples)`` holds; the last samples are returned."""
        deadline = time.monotonic() + timeout
        samples: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                samples = self.scrape()
                if predicate(samples):
                    return samples
            except OSError:
                pass
            if not self._proc.running:
                break
            time.sleep(0.5)
        raise ServiceError(f"worker: {what} not reached within {timeout:.0f}s; log tail:\n{self._proc.log_tail()}")

    def stop(self, timeout: float = 30) -> None:
        self._proc.stop(timeout)

    def kill(self) -> None:
        self._proc.kill()

    def log_tail(self, lines: int = 60) -> str:
        return self._proc.log_tail(lines)

    def __enter__(self) -> "KpiWorker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
