"""A real single-node Apache Kafka (KRaft) for tests, CI and local development.

``kafka_broker()`` picks, in order: an externally provided broker
(``KAFKA_BOOTSTRAP_SERVERS``), a Docker container via testcontainers, or a broker
run straight from the Maven Central jars (``LocalKafka``), which needs only Java 17+
and Maven.  The Maven path exists because CI and developer machines often have no
Docker engine, and a real broker is the only honest test of transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    # testcontainers is only a test extra; it is imported lazily where Docker is used.
    from testcontainers.core.container import DockerContainer

# Newest release verified with aiokafka 0.14.0 (incl. transactions, fencing and
# send_offsets_to_transaction) by tests/integration/test_local_kafka.py.
KAFKA_VERSION = "4.4.0"

# Kafka's own jars carry no logging backend; without one the broker logs nothing and
# startup failures become undiagnosable.  2.24.3 is what the Kafka 4.x distribution ships.
_LOG4J_VERSION = "2.24.3"
# Pinned so a fresh ~/.m2 resolves the same plugin every time instead of "latest".
_DEPENDENCY_PLUGIN_VERSION = "3.8.1"

_MAVEN_TIMEOUT_S = 1800.0
_LOCK_TIMEOUT_S = _MAVEN_TIMEOUT_S + 60.0
_STOP_TIMEOUT_S = 30.0
_LOG_TAIL_LINES = 40
_LOOPBACK = "127.0.0.1"
_READY_MARKER = ".resolved"

Logger = Callable[[str], None]


def print_to_stderr(message: str) -> None:
    print(f"[local_kafka] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    explicit = os.environ.get("PURAIFY_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "puraify-execution-engine"


def free_port() -> int:
    """Return a currently free loopback port.

    There is an unavoidable window between closing this socket and the broker binding
    the port; on a test machine that race is practically never lost.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Match the broker's own SO_REUSEADDR so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOOPBACK, port))
        except OSError:
            return False
        return True


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            # Log lines can be long (stack traces); 64 KiB comfortably holds 40 of them.
            fh.seek(max(0, fh.tell() - 65536))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------- Maven


def _pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0
                             https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.puraify.local</groupId>
  <artifactId>local-kafka-{version}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{_LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <!-- Kafka logs through slf4j 1.7.x, so the 1.x bridge, not log4j-slf4j2-impl. -->
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{_LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{_DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process held {path} for more than {timeout_s:.0f}s"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_kafka_libs(version: str = KAFKA_VERSION, *, log: Logger = print_to_stderr) -> Path:
    """Return a directory holding the broker's runtime jars, resolving them once.

    The marker file is written only after Maven succeeded, so an interrupted download
    is simply redone; the lock stops parallel test processes from racing on it.
    """
    root = cache_dir() / f"kafka-{version}"
    libs = root / "libs"
    marker = root / _READY_MARKER
    if marker.exists():
        return libs
    with _file_lock(cache_dir() / f"kafka-{version}.lock", _LOCK_TIMEOUT_S):
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(
                "Maven ('mvn') is not on PATH; it is needed once to download the Kafka "
                "broker jars (alternatively set KAFKA_BOOTSTRAP_SERVERS or run Docker)"
            )
        # Maven writes into a private staging dir that is renamed into place only on
        # success: a Maven orphaned by a killed run can then never corrupt `libs`.
        for stale in root.glob("libs.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = root / f"libs.partial-{os.getpid()}"
        staging.mkdir(parents=True)
        log(f"resolving Apache Kafka {version} from Maven Central into {libs} (one-off)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="puraify-kafka-pom-") as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_pom(version), encoding="utf-8")
            cmd = [
                mvn,
                "-B",
                "-q",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ]
            try:
                proc = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=_MAVEN_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(
                    f"Maven did not resolve Kafka {version} within {_MAVEN_TIMEOUT_S:.0f}s"
                ) from exc
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            output = "\n".join((proc.stdout + proc.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise RuntimeError(
                f"Maven failed to resolve org.apache.kafka:kafka_2.13:{version} "
                f"(exit {proc.returncode}):\n{output}"
            )
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
        marker.write_text(f"{time.time()}\n", encoding="utf-8")
        log(f"resolved Kafka {version} in {time.monotonic() - started:.1f}s")
    return libs


# ---------------------------------------------------------------------- the broker


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ ('java') is needed to run the local Kafka broker")
    return java


def _random_cluster_id() -> str:
    # Kafka's Uuid.toString(): URL-safe base64 without padding; Kafka itself never
    # hands out ids starting with '-' because CLI parsers mistake them for options.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    if not path.exists():
        return props
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return props


def _port_of(listeners: str, name: str) -> int | None:
    for listener in listeners.split(","):
        if listener.startswith(f"{name}://"):
            return int(listener.rsplit(":", 1)[1])
    return None


def _reuse_or_free(listeners: str, name: str) -> int:
    old = _port_of(listeners, name)
    return old if old is not None and _port_is_free(old) else free_port()


@dataclass(frozen=True)
class SaslListeners:
    """Authenticated listeners beside the plain one: SASL_PLAINTEXT always, SASL_SSL when a
    keystore is given. Both take PLAIN and SCRAM-SHA-512 for every user in `users`; the SCRAM
    credentials are written at storage format time (`--add-scram`), as Kafka's tools do."""

    users: Mapping[str, str] = field(default_factory=dict)  # name -> password
    # PEM file holding the broker's private key (PKCS#8, unencrypted) and certificate chain.
    keystore_pem: Path | None = None

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            # Kept to characters that need no quoting in JAAS, properties and --add-scram.
            if not (name.replace("-", "").isalnum() and password.replace("-", "").isalnum()):
                raise ValueError("SASL test users and passwords: letters, digits and '-' only")


_MECHANISMS = "PLAIN,SCRAM-SHA-512"
_live_brokers: weakref.WeakSet[LocalKafka] = weakref.WeakSet()


@atexit.register
def _kill_leftover_brokers() -> None:
    # A test run that dies with an exception must not leave JVMs holding ports/memory.
    for broker in list(_live_brokers):
        broker.kill()
        if broker._owns_data_dir:
            shutil.rmtree(broker.data_dir, ignore_errors=True)


class LocalKafka:
    """A single-node KRaft broker (combined broker+controller) running as a child JVM.

    Needs Kafka >= 3.9 (``StorageTool format --standalone``) and Java 17+.

    ``start()``/``stop()``/``restart()`` block; from async code call them through
    ``asyncio.to_thread`` so the event loop keeps running.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        version: str = KAFKA_VERSION,
        sasl: SaslListeners | None = None,
    ) -> None:
        self.version = version
        self.sasl = sasl
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="puraify-kafka-")) if data_dir is None else data_dir
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A reused data dir keeps its previous ports when they are still free, so a
        # developer re-running with --data-dir gets the same bootstrap address.
        old_listeners = _read_properties(self.config_path).get("listeners", "")
        # 0 means "any free port", as for bind(); Kafka itself would pick one we can't see.
        self.port = port if port else _reuse_or_free(old_listeners, "PLAINTEXT")
        self.controller_port = _reuse_or_free(old_listeners, "CONTROLLER")
        self.bootstrap_servers = f"{_LOOPBACK}:{self.port}"
        self.sasl_port = _reuse_or_free(old_listeners, "SASL_PLAINTEXT") if sasl else None
        self.sasl_ssl_port = (
            _reuse_or_free(old_listeners, "SASL_SSL") if sasl and sasl.keystore_pem else None
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._lock = threading.Lock()

    # -- paths ---------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def stdout_file(self) -> Path:
        return self.log_dir / "jvm-stdout.log"

    @property
    def _kafka_data(self) -> Path:
        return self.data_dir / "kraft-data"

    # -- lifecycle -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 120) -> None:
        with self._lock:
            if self.running:
                return
            # The one-off Maven download has its own bound; timeout_s is for the broker.
            libs = ensure_kafka_libs(self.version)
            deadline = time.monotonic() + timeout_s
            self._write_config()
            if not (self._kafka_data / "meta.properties").exists():
                self._format_storage(libs, deadline)
            self._launch(libs)
            _live_brokers.add(self)
            try:
                self._wait_until_ready(deadline)
            except BaseException:
                self._terminate(graceful=False)
                raise

    def stop(self) -> None:
        with self._lock:
            self._terminate(graceful=True)
            if self._owns_data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the broker, keeping its data, as a crash would."""
        with self._lock:
            self._terminate(graceful=False)

    def restart(self, *, hard: bool = False, timeout_s: float = 120) -> None:
        """Stop (SIGTERM, or SIGKILL if ``hard``) and start again on the same port and data."""
        with self._lock:
            self._terminate(graceful=not hard)
        self.start(timeout_s=timeout_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalKafka({self.bootstrap_servers}, {state}, data_dir={self.data_dir})"

    # -- internals -----------------------------------------------------------

    def _write_config(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": ",".join(
                [*self._client_listeners(), f"CONTROLLER://{_LOOPBACK}:{self.controller_port}"]
            ),
            "advertised.listeners": ",".join(self._client_listeners()),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                "SASL_SSL:SASL_SSL"
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            # KIP-853 dynamic quorum; formatted with --standalone.
            "controller.quorum.bootstrap.servers": f"{_LOOPBACK}:{self.controller_port}",
            "log.dirs": str(self._kafka_data),
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # Fewer internal partitions make the first group/transaction coordinator
            # lookup much faster on a freshly formatted broker.
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted broker cannot re-register until the old
            # registration's session expires (default 9 s); fault tests restart often.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.retention.hours": "24",
            "log.retention.bytes": str(256 * 1024 * 1024),
            "log.retention.check.interval.ms": "60000",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            **self._sasl_properties(),
        }
        body = "".join(f"{key}={value}\n" for key, value in props.items())
        self.config_path.write_text(
            f"# generated by consumer/local_kafka.py for Kafka {self.version}\n{body}",
            encoding="utf-8",
        )
        (self.data_dir / "log4j2.properties").write_text(self._log4j2_config(), encoding="utf-8")

    def _client_listeners(self) -> list[str]:
        listeners = [f"PLAINTEXT://{_LOOPBACK}:{self.port}"]
        if self.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://{_LOOPBACK}:{self.sasl_port}")
        if self.sasl_ssl_port is not None:
            listeners.append(f"SASL_SSL://{_LOOPBACK}:{self.sasl_ssl_port}")
        return listeners

    def _sasl_properties(self) -> dict[str, str]:
        if self.sasl is None:
            return {}
        plain_users = " ".join(f'user_{n}="{p}"' for n, p in self.sasl.users.items())
        props = {"sasl.enabled.mechanisms": _MECHANISMS}
        names = ["sasl_plaintext"] + (["sasl_ssl"] if self.sasl.keystore_pem else [])
        for name in names:
            prefix = f"listener.name.{name}"
            props[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            )
            props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        if self.sasl.keystore_pem is not None:
            props["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
            props["listener.name.sasl_ssl.ssl.keystore.location"] = str(self.sasl.keystore_pem)
        return props

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise RuntimeError("this broker has no SASL listener (pass sasl=SaslListeners(...))")
        return f"{_LOOPBACK}:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        if self.sasl_ssl_port is None:
            raise RuntimeError("this broker has no SASL_SSL listener (give a keystore_pem)")
        return f"{_LOOPBACK}:{self.sasl_ssl_port}"

    def _log4j2_config(self) -> str:
        log = self.log_file
        return f"""status = warn
name = puraify-local-kafka
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""

    def _java_cmd(self, libs: Path, main: str, *args: str) -> list[str]:
        return [
            _java(),
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def _format_storage(self, libs: Path, deadline: float) -> None:
        cmd = self._java_cmd(
            libs,
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(self.config_path),
            "--cluster-id",
            _random_cluster_id(),
            "--standalone",
            *(
                arg
                for name, password in (self.sasl.users.items() if self.sasl else ())
                for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
            ),
        )
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"formatting Kafka storage in {self._kafka_data} timed out") from exc
        if proc.returncode != 0:
            output = "\n".join((proc.stdout + proc.stderr).splitlines()[-_LOG_TAIL_LINES:])
            raise RuntimeError(
                f"kafka.tools.StorageTool format failed (exit {proc.returncode}):\n{output}"
            )

    def _launch(self, libs: Path) -> None:
        cmd = self._java_cmd(libs, "kafka.Kafka", str(self.config_path))
        # Failure reports should quote this run's errors, not a previous run's.
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.stdout_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                # Own session: a Ctrl-C in the developer's terminal reaches us, and we
                # stop the broker cleanly, instead of killing the JVM mid-write.
                start_new_session=True,
            )

    def _first_errors(self, limit: int = 3) -> list[str]:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        errors = [line for line in text.splitlines() if "] ERROR " in line or "] FATAL " in line]
        return errors[:limit]

    def _failure(self, reason: str) -> RuntimeError:
        parts = [f"Kafka {self.version} at {self.bootstrap_servers} {reason}."]
        # The tail is often just the end of a long stack trace; the first ERROR lines
        # usually name the actual cause (port in use, bad config, ...).
        first_errors = self._first_errors()
        if first_errors:
            parts.append("--- first errors ---\n" + "\n".join(first_errors))
        log_tail = _tail(self.log_file)
        parts.append(f"--- last lines of {self.log_file} ---\n{log_tail or '(empty)'}")
        jvm_tail = _tail(self.stdout_file, 15)
        if jvm_tail:
            parts.append(f"--- last lines of {self.stdout_file} ---\n{jvm_tail}")
        return RuntimeError("\n".join(parts))

    def _wait_until_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        while True:
            if proc.poll() is not None:
                raise self._failure(f"exited with code {proc.returncode} during startup")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure("did not become ready before the timeout")
            # Short probes, looped: a dying broker is noticed quickly via poll() above.
            if _accepts_connections(self.port) and _metadata_ok(
                self.bootstrap_servers, min(5.0, remaining)
            ):
                return
            time.sleep(0.25)

    def _terminate(self, *, graceful: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            if graceful:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
            else:
                proc.kill()
            proc.wait()
        self._proc = None
        _live_brokers.discard(self)


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


async def _probe_metadata(bootstrap_servers: str, timeout_s: float) -> bool:
    from aiokafka import AIOKafkaClient  # noqa: PLC0415 - keep module import cheap

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()


def _metadata_ok(bootstrap_servers: str, timeout_s: float) -> bool:
    # Run on a private loop in a worker thread: start()/restart() must also work when
    # called from inside a running event loop (async tests), where asyncio.run fails.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _probe_metadata(bootstrap_servers, timeout_s))
        try:
            return future.result(timeout=timeout_s + 5)
        except Exception:
            return False


# -------------------------------------------------------------------- entry points


def docker_available(timeout_s: float = 3.0) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        proc = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _start_docker_kafka(port: int | None, version: str) -> tuple[DockerContainer, str]:
    # testcontainers-python's KafkaContainer only drives Confluent images, so the
    # apache/kafka image is run the way testcontainers-java's org.testcontainers.kafka
    # does it: the container waits for a start script that knows the host-mapped port
    # to advertise, because that port is only known once the container exists.
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

    script = "/tmp/puraify_kafka_start.sh"
    container = (
        DockerContainer(f"apache/kafka:{version}")
        .with_env("CLUSTER_ID", _random_cluster_id())
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env(
            "KAFKA_LISTENERS",
            "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
        )
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .with_env("KAFKA_INTER_BROKER_LISTENER_NAME", "BROKER")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9094")
        .with_env("KAFKA_NUM_PARTITIONS", "3")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "3")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS", "3")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true")
        .with_env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
        .with_command(f'sh -c "while [ ! -f {script} ]; do sleep 0.1; done; sh {script}"')
    )
    if not port:
        container.with_exposed_ports(9092)
    else:
        container.with_bind_ports(9092, port)
    container.start()
    try:
        bootstrap = f"{container.get_container_host_ip()}:{container.get_exposed_port(9092)}"
        hostname = container.get_wrapped_container().attrs["Config"]["Hostname"]
        start_script = (
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{bootstrap},BROKER://{hostname}:9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        container.copy_into_container(start_script.encode(), script, mode=0o755)
        wait_for_logs(container, "Kafka Server started", timeout=120, raise_on_exit=True)
        if not _metadata_ok(bootstrap, 30.0):
            raise RuntimeError(f"Kafka container at {bootstrap} logged startup but is unusable")
    except BaseException:
        container.stop()
        raise
    return container, bootstrap


@contextlib.contextmanager
def kafka_broker(port: int | None = None, *, log: Logger = print_to_stderr) -> Iterator[str]:
    """Yield a bootstrap-servers string for a usable broker, and tear down what it started.

    1. ``KAFKA_BOOTSTRAP_SERVERS`` set: yield it and start nothing.
    2. A Docker engine answers: ``apache/kafka:<KAFKA_VERSION>`` via testcontainers
       (falling back to 3. if the container cannot be started, e.g. no image pull).
    3. Otherwise: ``LocalKafka`` from Maven artifacts.  ``port=None`` picks a free port.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        log(f"using external Kafka at {external} (KAFKA_BOOTSTRAP_SERVERS)")
        yield external
        return
    if docker_available():
        log(f"Docker engine found; starting apache/kafka:{KAFKA_VERSION} via testcontainers")
        try:
            container, bootstrap = _start_docker_kafka(port, KAFKA_VERSION)
        except Exception as exc:
            log(f"Docker Kafka failed ({type(exc).__name__}: {exc}); using the Maven broker")
        else:
            log(f"Kafka (Docker) ready at {bootstrap}")
            try:
                yield bootstrap
            finally:
                container.stop()
            return
    ensure_kafka_libs(KAFKA_VERSION, log=log)
    broker = LocalKafka(port=port)
    started = time.monotonic()
    log(f"starting local Kafka {KAFKA_VERSION} (no Docker) in {broker.data_dir}")
    with broker:
        log(f"Kafka ready at {broker.bootstrap_servers} after {time.monotonic() - started:.1f}s")
        yield broker.bootstrap_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.localkafka.launcher",
        description="Run a single-node Apache Kafka (KRaft) in the foreground until Ctrl-C.",
    )
    parser.add_argument(
        "--port", type=int, default=9092, help="client port (default 9092; 0 = any free port)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep broker data here across runs (default: a temp dir removed on exit)",
    )
    parser.add_argument("--version", default=KAFKA_VERSION, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    # SIGTERM gets Ctrl-C semantics so `kill <pid>` also stops the broker we started.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    broker = LocalKafka(port=args.port, data_dir=args.data_dir, version=args.version)
    try:
        broker.start()
        print(f"Kafka {broker.version} ready: bootstrap servers {broker.bootstrap_servers}")
        print(f"data: {broker.data_dir}  broker log: {broker.log_file}  (Ctrl-C to stop)")
        sys.stdout.flush()
        while broker.running:
            time.sleep(1.0)
        print(f"broker exited unexpectedly:\n{_tail(broker.log_file)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        broker.stop()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
