"""Clear errors for the command line: bad input or an unreachable service said in one or two lines.

Each check raises :class:`CommandError`; `kpi` prints its message after the command's name and exits
with its code (2: the input is wrong, 1: a service is unreachable or a port taken). Nothing here
prints a traceback, and nothing here knows about Faust.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterable

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0)  # then every 4 s until the wait is over


class CommandError(Exception):
    """What is wrong and what to do, for a person; `code` is the exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def readable_file(path: str | os.PathLike, option: str) -> Path:
    """`path` as a file this process can read, or a CommandError naming the option."""
    p = Path(path)
    if not p.exists():
        raise CommandError(f"{option} {p}: no such file; check the path")
    if p.is_dir():
        raise CommandError(f"{option} {p}: is a folder, not a file")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise CommandError(f"{option} {p}: cannot be read ({exc.strerror}); check its permissions") from None
    return p


def writable_file(path: str | os.PathLike, option: str) -> Path:
    """`path` as a file this process can create or overwrite (nothing is written), or a CommandError."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise CommandError(f"{option} {p}: is a folder; give a file name")
    if not parent.is_dir():
        raise CommandError(f"{option} {p}: the folder {parent} does not exist; create it or choose another path")
    if (p.exists() and not os.access(p, os.W_OK)) or (not p.exists() and not os.access(parent, os.W_OK | os.X_OK)):
        raise CommandError(f"{option} {p}: cannot be written (permission denied); choose another path")
    return p


def port_in_use(host: str, port: int) -> bool:
    """True when `host:port` cannot be bound now (another process listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def check_port_free(host: str, port: int, what: str, option: str) -> None:
    if port and port_in_use(host, port):
        raise CommandError(f"port {port} on {host} ({what}) is in use by another process; stop it or pass "
                           f"{option} with another port", code=1)


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        try:
            out.append((host.strip("[]") or "127.0.0.1", int(port)))
        except ValueError:
            raise CommandError(f"broker address {part.strip()!r} is not host:port (KPI_KAFKA__BOOTSTRAP, "
                               "--bootstrap)") from None
    return out


def _reachable(addresses: Iterable[tuple[str, int]], timeout: float = 1.0) -> str | None:
    """None when one address accepts a TCP connection, else the last error."""
    error = "no address"
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except OSError as exc:
            error = exc.strerror or str(exc)
    return error


def retry_with_backoff(attempt: Callable[[], str | None], wait_seconds: float,
                       sleep: Callable[[float], None] = time.sleep) -> tuple[str | None, int, float]:
    """Call `attempt` (None = success, else the reason) after 0.5, 1, 2, then every 4 s, for at most
    `wait_seconds`; returns (last reason or None, tries, seconds waited)."""
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        reason = attempt()
        waited = time.monotonic() - started
        if reason is None:
            return None, tries, waited
        left = wait_seconds - waited
        if left <= 0:
            return reason, tries, waited
        sleep(min(BACKOFF_SECONDS[min(tries - 1, len(BACKOFF_SECONDS) - 1)], left))


HINT_BROKER = ("Start it, or point KPI_KAFKA__BOOTSTRAP / --bootstrap at one (`kpi run` starts its own); "
               "KPI_KAFKA__CONNECT_WAIT_SECONDS sets how long to retry.")


def wait_for_broker(bootstrap: str, wait_seconds: float, say: Callable[[str], None] | None = None,
                    hint: str = HINT_BROKER) -> None:
    """Return once a broker of `bootstrap` accepts connections; a CommandError after `wait_seconds`."""
    addresses = _addresses(bootstrap)
    told = []

    def attempt() -> str | None:
        reason = _reachable(addresses)
        if reason is not None and not told and say is not None:
            say(f"waiting for the Kafka broker at {bootstrap} ({reason}); retrying for up to {wait_seconds:.0f} s")
            told.append(True)
        return reason

    reason, tries, waited = retry_with_backoff(attempt, wait_seconds)
    if reason is not None:
        raise CommandError(
            f"cannot reach the Kafka broker at {bootstrap} ({reason}; {tries} tries in {waited:.0f} s).\n{hint}", code=1)


def wait_for_redis(url: str, wait_seconds: float) -> None:
    """Return once Redis at `url` answers PING; a CommandError after `wait_seconds`."""
    from redis import Redis
    from redis.exceptions import RedisError

    from .snapshot import redis_location

    def attempt() -> str | None:
        client = Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        try:
            client.ping()
            return None
        except RedisError as exc:
            return str(exc).split("\n")[0].rstrip(".") or type(exc).__name__
        except OSError as exc:
            return exc.strerror or str(exc)
        finally:
            client.close()

    reason, tries, waited = retry_with_backoff(attempt, wait_seconds)
    if reason is not None:
        raise CommandError(f"cannot reach Redis at {redis_location(url)} ({reason}; {tries} tries in {waited:.0f} s).\n"
                           "Start redis-server, or pass the right --redis-url; --redis-wait sets how long to retry.",
                           code=1)


def check_known_queues(configured: Iterable[str], known: Iterable[str], source: str) -> None:
    """Every queue named in the settings file is one the feed has: a misspelt name would silently get the
    defaults while the real queue is left unconfigured."""
    known = sorted(set(known))
    unknown = sorted(set(configured) - set(known))
    if unknown:
        names = ", ".join(repr(q) for q in unknown)
        raise CommandError(f"{source}: queue {names} is not in the simulated contact center "
                           f"(its queues: {', '.join(known)}); fix the name, or pass a --model that has it")
