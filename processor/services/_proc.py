"""Shared helpers for the service launchers: ports and child processes.

Only the standard library is used here.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "LocalServer",
    "ManagedProcess",
    "ServiceError",
    "free_port",
    "port_is_open",
    "wait_for_port",
    "wait_until",
]


class ServiceError(RuntimeError):
    """A service could not be started (the message carries its log tail)."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that is free right now.

    The port is found by binding to port 0; there is a small window in which
    another process may grab it, which is acceptable for tests and dev runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    *,
    interval: float = 0.1,
    process: "ManagedProcess | None" = None,
) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises :class:`TimeoutError` after ``timeout`` seconds, or
    :class:`ServiceError` at once if ``process`` is given and has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_is_open(host, port):
            return
        if process is not None and not process.running:
            raise ServiceError(
                f"{process.name} exited with code {process.returncode} before "
                f"listening on {host}:{port}\n{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")
        time.sleep(interval)


# Every started ManagedProcess, so that a crashed test run or a forgotten
# stop() does not leave brokers running after the interpreter exits.
_LIVE: "weakref.WeakSet[ManagedProcess]" = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - runs at interpreter exit
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        try:
            proc.stop(timeout=5)
        except Exception:
            pass


class ManagedProcess:
    """A child process whose stdout and stderr go to one log file.

    The child runs in its own session (process group), so Ctrl-C in the
    parent's terminal does not reach it and :meth:`stop` / :meth:`kill`
    signal the whole group.
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        log_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = [os.fspath(a) for a in args]
        self.log_path = Path(log_path)
        self.name = name or Path(self.args[0]).name
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    # -- state ---------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "ManagedProcess":
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = None
        if self.env is not None:
            env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} start: "
                      f"{' '.join(self.args)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def _signal(self, sig: int) -> None:
        assert self._popen is not None
        try:
            os.killpg(self._popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # pragma: no cover - group not ours any more
            self._popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.

        Returns the exit code (None if the process was never started).
        """
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._popen.wait(10)
        # Reap anything left in the group (e.g. helper children).
        self._signal(signal.SIGKILL)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self._popen.returncode

    def kill(self) -> int | None:
        """SIGKILL (kill -9) at once, like a crash, and wait for the exit."""
        if self._popen is None:
            return None
        self._signal(signal.SIGKILL)
        self._popen.wait(10)
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self._popen.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.wait(timeout)

    # -- diagnostics ---------------------------------------------------------
    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def wait_until(check, timeout: float, what: str, process: ManagedProcess, interval: float = 0.05) -> None:
    """Poll ``check()`` until true; TimeoutError after ``timeout`` s or as soon as ``process`` exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if not process.running or time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


class LocalServer:
    """A server of ours: one child process in a work folder, waited for until usable, stopped at the end.

    Subclasses give ``label`` (for messages), ``address`` and :meth:`_command`/:meth:`_wait_ready`.
    A work folder the caller did not give is temporary and removed by :meth:`stop`.
    """

    label = "server"
    log_name = "server.log"
    work_prefix = "kpi-server-"
    stop_wait = 5.0

    def __init__(self, work_dir: str | os.PathLike[str] | None) -> None:
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else None
        self._proc: ManagedProcess | None = None

    # -- to override -------------------------------------------------------------
    @property
    def address(self) -> str:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        raise NotImplementedError

    # -- state -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._proc.log_path if self._proc else None

    def log_tail(self, lines: int = 40) -> str:
        return self._proc.log_tail(lines) if self._proc else ""

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = 30):
        if self.running:
            return self
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix=self.work_prefix))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._proc = ManagedProcess(self._command(), self.work_dir / self.log_name, name=self.label, cwd=self.work_dir)
        self._proc.start()
        try:
            self._wait_ready(timeout)
        except Exception as exc:
            tail = self._proc.log_tail()
            self._proc.stop(timeout=self.stop_wait)
            raise ServiceError(f"{self.label} did not become ready at {self.address}: {exc}\n{tail}") from exc
        except BaseException:  # Ctrl-C while waiting: do not leave it running
            self._proc.stop(timeout=self.stop_wait)
            raise
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._proc is not None:
            self._proc.stop(timeout=timeout)
        if self._own_work_dir and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None

    def kill(self) -> None:
        """SIGKILL at once, like a crash."""
        if self._proc is not None:
            self._proc.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} running={self.running}>"
