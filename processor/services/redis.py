"""A throw-away Redis server (Debian's ``redis-server``) without persistence."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from ._proc import ManagedProcess, ServiceError, free_port, wait_for_port

__all__ = ["RedisServer"]

DEFAULT_REDIS_SERVER = "/usr/bin/redis-server"


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for p in parts:
        b = p.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _ping(port: int, password: str | None, timeout: float = 1.0) -> bool:
    """True when the server answers PING with +PONG (after AUTH if a password is set)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            f = s.makefile("rb")
            if password is not None:
                s.sendall(_resp("AUTH", password))
                if not f.readline().startswith(b"+OK"):
                    return False
            s.sendall(_resp("PING"))
            return f.readline().startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` on ``127.0.0.1:port``: no RDB snapshots, no AOF, foreground.

    ``.url`` is a ``redis://`` URL for redis-py (``redis.Redis.from_url``).
    Output goes to ``<work_dir>/redis.log``; ``work_dir`` defaults to a
    temporary folder removed by :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        *,
        binary: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.binary = binary or (DEFAULT_REDIS_SERVER if os.path.exists(DEFAULT_REDIS_SERVER)
                                 else shutil.which("redis-server") or DEFAULT_REDIS_SERVER)
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def log_path(self) -> Path | None:
        return self._proc.log_path if self._proc else None

    def start(self, timeout: float = 15) -> "RedisServer":
        """Start redis-server and wait until it answers PING."""
        if self.running:
            return self
        if not os.path.exists(self.binary):
            raise ServiceError(f"{self.binary} not found; run scripts/setup.sh (apt-get install redis-server)")
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="kpi-redis-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--supervised", "no",
            "--dir", str(self.work_dir),
            "--logfile", "",
        ]
        if self.password is not None:
            cmd += ["--requirepass", self.password]
        self._proc = ManagedProcess(cmd, self.work_dir / "redis.log", name="redis-server", cwd=self.work_dir)
        self._proc.start()
        deadline = time.monotonic() + timeout
        try:
            wait_for_port("127.0.0.1", self.port, timeout, process=self._proc)
            while not _ping(self.port, self.password):
                if not self._proc.running or time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} does not answer PING")
                time.sleep(0.05)
        except Exception as exc:
            tail = self._proc.log_tail()
            self._proc.stop(timeout=5)
            raise ServiceError(f"redis-server did not become ready on 127.0.0.1:{self.port}: {exc}\n{tail}") from exc
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

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer 127.0.0.1:{self.port} running={self.running}>"
