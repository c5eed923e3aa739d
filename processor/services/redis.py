"""A throw-away Redis server (Debian's ``redis-server``) without persistence."""

from __future__ import annotations

import os
import shutil
import socket
from urllib.parse import quote

from ._proc import LocalServer, ServiceError, free_port, wait_for_port, wait_until

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


class RedisServer(LocalServer):
    """``redis-server`` on ``127.0.0.1:port``: no RDB snapshots, no AOF, foreground.

    ``.url`` is a ``redis://`` URL for redis-py (``redis.Redis.from_url``).
    Output goes to ``<work_dir>/redis.log``; ``work_dir`` defaults to a
    temporary folder removed by :meth:`stop`.
    """

    label = "redis-server"
    log_name = "redis.log"
    work_prefix = "kpi-redis-"

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
        super().__init__(work_dir)

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15) -> "RedisServer":
        """Start redis-server and wait until it answers PING."""
        if not self.running and not os.path.exists(self.binary):
            raise ServiceError(f"{self.binary} not found; run scripts/setup.sh (apt-get install redis-server)")
        return super().start(timeout)

    def _command(self) -> list[str]:
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
        return cmd

    def _wait_ready(self, timeout: float) -> None:
        wait_for_port("127.0.0.1", self.port, timeout, process=self._proc)
        wait_until(lambda: _ping(self.port, self.password), timeout,
                   f"redis-server on port {self.port} does not answer PING", self._proc)
