"""A real single-node Apache Kafka broker (KRaft mode) for dev runs and tests.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml``
(``mvn dependency:copy-dependencies``) into a cache folder, and the broker is
started with ``java -cp '<cache>/libs/*' kafka.Kafka server.properties``.

Command line::

    python -m processor.services.kafka --ensure-jars      # fetch the jars once
    python -m processor.services.kafka --run --port 9092  # broker in foreground
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._proc import LocalServer, ManagedProcess, ServiceError, free_port, wait_for_port

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "ApacheKafka",
    "BrokerTls",
    "default_cache_dir",
    "ensure_kafka_jars",
    "kafka_metadata_ready",
    "wait_for_kafka",
]

DEFAULT_KAFKA_VERSION = "3.9.1"
SCALA_BINARY_VERSION = "2.13"

# deploy/kafka/pom.xml in a source checkout (pip install -e / running in place).
_REPO_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

# Used only when the package is installed without the repo around it.
_FALLBACK_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>contact-kpi</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1.0.0</version>
  <packaging>pom</packaging>
  <properties>
    <kafka.version>3.9.1</kafka.version>
    <scala.binary.version>2.13</scala.binary.version>
    <slf4j.version>1.7.36</slf4j.version>
  </properties>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_${scala.binary.version}</artifactId>
      <version>${kafka.version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>${slf4j.version}</version>
    </dependency>
  </dependencies>
</project>
"""

_COMPLETE_MARKER = ".complete"

_LOG4J_PROPERTIES = """\
# Written by processor/services/kafka.py: warnings only, plus the lines that
# say the broker started or stopped.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.Kafka$=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients.NetworkClient=ERROR
"""


def _log(msg: str) -> None:
    print(f"[kafka] {msg}", file=sys.stderr, flush=True)


def default_cache_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """``$KPI_CACHE_DIR/kafka-<version>``, else ``~/.cache/contact-kpi/kafka-<version>``."""
    base = os.environ.get("KPI_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "contact-kpi"
    return root / f"kafka-{version}"


def _jars_complete(libs: Path, version: str) -> bool:
    return (libs / _COMPLETE_MARKER).is_file() and (
        libs / f"kafka_{SCALA_BINARY_VERSION}-{version}.jar"
    ).is_file()


def ensure_kafka_jars(
    version: str = DEFAULT_KAFKA_VERSION,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    maven_repo_local: str | os.PathLike[str] | None = None,
) -> Path:
    """Make sure the Kafka broker jars are in ``<cache_dir>/libs``; return that folder.

    Runs ``mvn dependency:copy-dependencies`` only when the jars are missing.
    ``maven_repo_local`` (or ``$KPI_MAVEN_REPO_LOCAL``) overrides Maven's local
    repository (default ``~/.m2/repository``). Safe to call from several
    processes at once: they serialise on a lock file in the cache folder.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(version)
    libs = cache / "libs"
    if _jars_complete(libs, version):
        return libs

    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(libs, version):  # another process fetched them
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ServiceError("Maven (mvn) is not on PATH; run scripts/setup.sh first")
        pom = _REPO_POM
        if not pom.is_file():
            pom = cache / "pom.xml"
            pom.write_text(_FALLBACK_POM)
        staging = cache / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(pom),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        repo_local = maven_repo_local or os.environ.get("KPI_MAVEN_REPO_LOCAL")
        if repo_local:
            cmd.append(f"-Dmaven.repo.local={Path(repo_local).expanduser()}")
        _log(f"fetching Apache Kafka {version} jars with Maven into {libs} ...")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise ServiceError(
                f"mvn failed ({proc.returncode}) fetching Kafka {version}:\n"
                + proc.stdout[-4000:]
            )
        if not (staging / f"kafka_{SCALA_BINARY_VERSION}-{version}.jar").is_file():
            raise ServiceError(f"mvn ran but kafka_{SCALA_BINARY_VERSION}-{version}.jar is missing in {staging}")
        (staging / _COMPLETE_MARKER).write_text(version + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        n = sum(1 for p in libs.glob("*.jar"))
        _log(f"{n} jars ready in {libs} ({time.monotonic() - t0:.0f}s)")
    return libs


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, url-safe base64 without padding (22 chars).

    One starting with '-' would be read as an option by StorageTool, so those are drawn again.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# -- readiness -------------------------------------------------------------------
async def kafka_metadata_ready(bootstrap: str, request_timeout: float = 5.0) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request listing brokers."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(request_timeout * 1000),
        client_id="contact-kpi-readiness",
    )
    try:
        await client.bootstrap()
        md = await client.fetch_all_metadata()
        return bool(md.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def _run_coro(coro_factory):
    """Run a coroutine to completion from sync code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    result: list = []
    error: list[BaseException] = []

    def runner() -> None:
        try:
            result.append(asyncio.run(coro_factory()))
        except BaseException as exc:  # pragma: no cover - re-raised below
            error.append(exc)

    t = threading.Thread(target=runner, name="kafka-readiness", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


def wait_for_kafka(
    bootstrap: str,
    timeout: float = 60.0,
    *,
    process: ManagedProcess | None = None,
) -> None:
    """Block until an aiokafka client can fetch cluster metadata from ``bootstrap``."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    wait_for_port(host, int(port), timeout, process=process)
    while True:
        remaining = deadline - time.monotonic()
        if _run_coro(lambda: kafka_metadata_ready(bootstrap, max(1.0, min(5.0, remaining)))):
            return
        if process is not None and not process.running:
            raise ServiceError(
                f"{process.name} exited with code {process.returncode}\n{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"Kafka at {bootstrap} not serving metadata after {timeout:.0f}s")
        time.sleep(0.25)


# -- the broker ----------------------------------------------------------------------
@dataclass(frozen=True)
class BrokerTls:
    """The PEM files of a broker's TLS listeners (``ssl.keystore.type=PEM``, ``ssl.truststore.type=PEM``).

    ``keystore``: the broker's private key, encrypted with ``key_password``, followed by its
    certificate chain. Kafka reads a PEM key store file only with a key password, and Java only
    decrypts PKCS#8 keys of a PBES1 scheme (``openssl pkcs8 -topk8 -v1 PBE-SHA1-3DES``; there is no
    PBES2 SecretKeyFactory): see ``tests/tls.py``.
    ``truststore``: the CA certificates a client certificate must chain to.
    ``client_auth`` of the SSL listener: ``required`` (mutual TLS), ``requested`` or ``none``.
    For tests and dev runs: the key password is written to ``server.properties`` in ``data_dir``.
    """

    keystore: Path
    truststore: Path
    key_password: str
    client_auth: str = "required"

    def __repr__(self) -> str:  # the key password stays out of reprs and test reports
        return f"BrokerTls(keystore={self.keystore}, truststore={self.truststore}, client_auth={self.client_auth})"


SCRAM_MECHANISM = "SCRAM-SHA-256"


class ApacheKafka(LocalServer):
    """Single-node Apache Kafka (KRaft, broker+controller) bound to 127.0.0.1.

    Everything lives under ``data_dir``: ``server.properties``,
    ``log4j.properties``, the log segments in ``kraft-logs/`` and the process
    output in ``kafka.log``. Storage is formatted only on the first start, so
    a later start on the same ``data_dir`` (after :meth:`stop` or
    :meth:`kill`, or from a new instance) keeps every topic and message.
    Ports are chosen once per instance and kept across restarts.

    The PLAINTEXT listener (``bootstrap``) is always there: the broker talks to itself through it,
    and readiness is checked on it. With ``tls`` the broker also listens for ``SSL`` on
    ``ssl_bootstrap`` (client certificates as ``tls.client_auth`` says: required by default), and
    with ``scram_users`` (user -> password) for ``SASL_SSL`` with SCRAM-SHA-256 on
    ``sasl_ssl_bootstrap`` (the server certificate of ``tls``, no client certificate). KRaft keeps
    SCRAM credentials in the cluster metadata: the users are added when the storage is formatted
    (``kafka-storage format --add-scram``, passwords on its command line: tests and dev runs only),
    so only on the first start of a ``data_dir``.
    """

    label = "Apache Kafka"
    log_name = "kafka.log"
    stop_wait = 10.0

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int | None = None,
        controller_port: int | None = None,
        *,
        version: str = DEFAULT_KAFKA_VERSION,
        cache_dir: str | os.PathLike[str] | None = None,
        heap: str = "512m",
        extra_config: dict[str, str] | None = None,
        tls: BrokerTls | None = None,
        scram_users: Mapping[str, str] | None = None,
    ) -> None:
        if scram_users and tls is None:
            raise ValueError("scram_users need tls: the SCRAM users are served on a SASL_SSL listener")
        for text in (*(scram_users or {}), *(scram_users or {}).values()):
            if not text or set(text) & set(',[]="\'') or any(c.isspace() for c in text):
                raise ValueError("SCRAM user names and passwords must be non-empty, without spaces or , [ ] = \" \\ "
                                 "(they are passed to kafka-storage format --add-scram)")
        self.data_dir = Path(data_dir).resolve()
        taken: set[int] = set()

        def new_port(given: int | None = None) -> int:
            p = given or free_port()
            while p in taken:
                p = free_port()
            taken.add(p)
            return p

        self.port = new_port(port)
        self.controller_port = new_port(controller_port)
        self.tls = tls
        self.scram_users = dict(scram_users or {})
        self.ssl_port = new_port() if tls is not None else None
        self.sasl_ssl_port = new_port() if self.scram_users else None
        self.version = version
        self.cache_dir = cache_dir
        self.heap = heap
        self.extra_config = dict(extra_config or {})
        self.log_dirs = self.data_dir / "kraft-logs"
        self.config_path = self.data_dir / "server.properties"
        self.log4j_path = self.data_dir / "log4j.properties"
        super().__init__(self.data_dir)  # the data folder is the caller's: never removed

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener (client certificates as ``tls.client_auth`` says)."""
        if self.ssl_port is None:
            raise AttributeError("this broker has no SSL listener (no tls given)")
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener (SCRAM-SHA-256 over TLS)."""
        if self.sasl_ssl_port is None:
            raise AttributeError("this broker has no SASL_SSL listener (no scram_users given)")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def address(self) -> str:
        return self.bootstrap

    def _listeners(self) -> dict[str, str]:
        """Listener name (= its security protocol) -> host:port, the client listeners only."""
        out = {"PLAINTEXT": self.bootstrap}
        if self.ssl_port is not None:
            out["SSL"] = self.ssl_bootstrap
        if self.sasl_ssl_port is not None:
            out["SASL_SSL"] = self.sasl_ssl_bootstrap
        return out

    def _security_properties(self) -> dict[str, str]:
        if self.tls is None:
            return {}
        props = {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(Path(self.tls.keystore).resolve()),
            "ssl.key.password": self.tls.key_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(Path(self.tls.truststore).resolve()),
            "listener.name.ssl.ssl.client.auth": self.tls.client_auth,
        }
        if self.scram_users:
            mech = SCRAM_MECHANISM.lower()
            props.update({
                "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
                f"listener.name.sasl_ssl.{mech}.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "listener.name.sasl_ssl.ssl.client.auth": "none",
            })
        return props

    @property
    def log_path(self) -> Path:
        return self.data_dir / self.log_name

    def _server_properties(self) -> str:
        client = self._listeners()
        advertised = ",".join(f"{name}://{where}" for name, where in client.items())
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"{advertised},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": ",".join(f"{name}:{name}" for name in client) + ",CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            # After a kill -9 the restarted broker waits for its old
            # registration to expire: keep that short (default 9 s).
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        props.update(self._security_properties())
        props.update(self.extra_config)
        lines = ["# Written by processor/services/kafka.py; rewritten on every start."]
        lines += [f"{k}={v}" for k, v in props.items()]
        return "\n".join(lines) + "\n"

    def _java(self, libs: Path, *args: str, jvm_opts: tuple[str, ...] = ()) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise ServiceError("java is not on PATH; run scripts/setup.sh first")
        return [
            java,
            *jvm_opts,
            f"-Dlog4j.configuration=file:{self.log4j_path}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-Djava.awt.headless=true",
            "-cp", str(libs / "*"),
            *args,
        ]

    def _format_storage_if_needed(self, libs: Path) -> None:
        if (self.log_dirs / "meta.properties").is_file():
            return
        cluster_id = _random_cluster_id()
        scram = [arg for user, password in self.scram_users.items()
                 for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]")]
        cmd = self._java(libs, "kafka.tools.StorageTool", "format",
                         "-t", cluster_id, "-c", str(self.config_path), "--ignore-formatted", *scram,
                         jvm_opts=("-Xmx256m",))
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(self.log_path, "a") as log:
            log.write(f"===== storage format (cluster id {cluster_id})\n{proc.stdout}")
        if proc.returncode != 0:
            raise ServiceError(f"kafka storage format failed ({proc.returncode}):\n{proc.stdout[-4000:]}")

    def start(self, timeout: float = 90) -> "ApacheKafka":
        """Start the broker (formatting storage on first use) and wait until it serves metadata."""
        return super().start(timeout)

    def _command(self) -> list[str]:
        libs = ensure_kafka_jars(self.version, self.cache_dir)
        self.log_dirs.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._server_properties())
        self.log4j_path.write_text(_LOG4J_PROPERTIES)
        self._format_storage_if_needed(libs)
        return self._java(libs, "kafka.Kafka", str(self.config_path),
                          jvm_opts=(f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"))

    def _wait_ready(self, timeout: float) -> None:
        wait_for_kafka(self.bootstrap, timeout, process=self._proc)

    def stop(self, timeout: float = 30) -> None:
        """Controlled shutdown (SIGTERM); SIGKILL after ``timeout`` seconds. Storage stays."""
        super().stop(timeout)

    def __repr__(self) -> str:
        return f"<ApacheKafka {self.bootstrap} data_dir={self.data_dir} running={self.running}>"


# -- command line ----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m processor.services.kafka",
        description="Fetch the Apache Kafka jars, or run a single-node KRaft broker in the foreground.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--ensure-jars", action="store_true",
                        help="download the broker jars with Maven if they are not cached yet")
    action.add_argument("--run", action="store_true",
                        help="run a broker in the foreground until Ctrl-C")
    parser.add_argument("--version", default=DEFAULT_KAFKA_VERSION,
                        help=f"Kafka version (default {DEFAULT_KAFKA_VERSION})")
    parser.add_argument("--cache-dir", default=None,
                        help="jar cache folder (default $KPI_CACHE_DIR/kafka-VERSION or "
                             "~/.cache/contact-kpi/kafka-VERSION)")
    parser.add_argument("--port", type=int, default=9092, help="client port (default 9092; 0 = any free port)")
    parser.add_argument("--controller-port", type=int, default=0, help="KRaft controller port (default: any free)")
    parser.add_argument("--data-dir", default=None,
                        help="broker data folder, kept between runs (default: a new temporary folder)")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for readiness")
    args = parser.parse_args(argv)

    if args.ensure_jars:
        libs = ensure_kafka_jars(args.version, args.cache_dir)
        print(libs)
        return 0

    def on_sigterm(signum, frame):  # stop the broker on `kill <python pid>` too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="kpi-kafka-")
    broker = ApacheKafka(data_dir, port=args.port or None, controller_port=args.controller_port or None,
                         version=args.version, cache_dir=args.cache_dir)
    t0 = time.monotonic()
    try:
        broker.start(timeout=args.timeout)
    except KeyboardInterrupt:
        broker.stop()
        return 130
    print(f"Apache Kafka {args.version} ready in {time.monotonic() - t0:.1f}s", flush=True)
    print(f"  bootstrap: {broker.bootstrap}", flush=True)
    print(f"  data dir:  {broker.data_dir}", flush=True)
    print(f"  logs:      {broker.log_path}", flush=True)
    print("Ctrl-C to stop.", flush=True)
    try:
        while broker.running:
            time.sleep(0.5)
        print(f"broker exited unexpectedly\n{broker.log_tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        broker.stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
