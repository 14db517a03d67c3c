"""`LocalKafka`: a single-node KRaft broker run as a child JVM from the Maven Central jars."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from consumer.localkafka.config import (
    Listeners,
    SaslListeners,
    log4j2_properties,
    port_of,
    read_properties,
    server_properties,
)
from consumer.localkafka.jvm import format_storage, java_command
from consumer.localkafka.machine import (
    LOOPBACK,
    LocalKafkaError,
    free_port,
    port_is_free,
    print_to_stderr,
    tail,
)
from consumer.localkafka.maven import KAFKA_VERSION, ensure_kafka_libs
from consumer.localkafka.ownership import (
    BrokerRecord,
    clear_record,
    start_watchdog,
    stop_orphan,
    write_record,
)
from consumer.localkafka.readiness import accepts_connections, metadata_ok

_STOP_TIMEOUT_S = 30.0
_live_brokers: weakref.WeakSet[LocalKafka] = weakref.WeakSet()


@atexit.register
def _kill_leftover_brokers() -> None:
    # A test run that dies with an exception must not leave JVMs holding ports/memory.
    for broker in list(_live_brokers):
        broker.kill()
        if broker._owns_data_dir:
            shutil.rmtree(broker.data_dir, ignore_errors=True)


def _reuse_or_free(listeners: str, name: str) -> int:
    old = port_of(listeners, name)
    return old if old is not None and port_is_free(old) else free_port()


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
        old_listeners = read_properties(self.config_path).get("listeners", "")
        # 0 means "any free port", as for bind(); Kafka itself would pick one we can't see.
        self.port = port if port else _reuse_or_free(old_listeners, "PLAINTEXT")
        self.controller_port = _reuse_or_free(old_listeners, "CONTROLLER")
        self.bootstrap_servers = f"{LOOPBACK}:{self.port}"
        self.sasl_port = _reuse_or_free(old_listeners, "SASL_PLAINTEXT") if sasl else None
        self.sasl_ssl_port = (
            _reuse_or_free(old_listeners, "SASL_SSL") if sasl and sasl.keystore_pem else None
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
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
    def _log4j_config(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def _kafka_data(self) -> Path:
        return self.data_dir / "kraft-data"

    # -- addresses -----------------------------------------------------------

    @property
    def sasl_bootstrap_servers(self) -> str:
        if self.sasl_port is None:
            raise RuntimeError("this broker has no SASL listener (pass sasl=SaslListeners(...))")
        return f"{LOOPBACK}:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        if self.sasl_ssl_port is None:
            raise RuntimeError("this broker has no SASL_SSL listener (give a keystore_pem)")
        return f"{LOOPBACK}:{self.sasl_ssl_port}"

    # -- lifecycle -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 120) -> None:
        with self._lock:
            if self.running:
                return
            # A broker this data dir's previous owner left running is stopped, never reused.
            other = stop_orphan(self.data_dir, self.config_path, print_to_stderr)
            if other is not None:
                raise LocalKafkaError(
                    f"{self.data_dir} is in use by the {other.describe()}, which still runs"
                )
            # The one-off Maven download has its own bound; timeout_s is for the broker.
            libs = ensure_kafka_libs(self.version)
            deadline = time.monotonic() + timeout_s
            self._write_config()
            if not (self._kafka_data / "meta.properties").exists():
                self._format(libs, deadline)
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

    def _format(self, libs: Path, deadline: float) -> None:
        format_storage(
            libs,
            log4j_config=self._log4j_config,
            server_config=self.config_path,
            kafka_data=self._kafka_data,
            sasl=self.sasl,
            deadline=deadline,
        )

    def _properties(self) -> dict[str, str]:
        listeners = Listeners(self.port, self.controller_port, self.sasl_port, self.sasl_ssl_port)
        return server_properties(listeners, self._kafka_data, self.sasl)

    def _write_config(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        props = self._properties()
        body = "".join(f"{key}={value}\n" for key, value in props.items())
        self.config_path.write_text(
            f"# generated by consumer/localkafka for Kafka {self.version}\n{body}",
            encoding="utf-8",
        )
        self._log4j_config.write_text(log4j2_properties(self.log_file), encoding="utf-8")

    def _launch(self, libs: Path) -> None:
        cmd = java_command(libs, self._log4j_config, "kafka.Kafka", str(self.config_path))
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
        self._watchdog = start_watchdog(self._proc.pid, self.data_dir)
        write_record(self.data_dir, BrokerRecord(self._proc.pid, os.getpid(), self.port))

    def _first_errors(self, limit: int = 3) -> list[str]:
        try:
            with self.log_file.open("rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        errors = [line for line in text.splitlines() if "] ERROR " in line or "] FATAL " in line]
        return errors[:limit]

    def _failure(self, reason: str) -> LocalKafkaError:
        parts = [f"Kafka {self.version} at {self.bootstrap_servers} {reason}."]
        # The tail is often just the end of a long stack trace; the first ERROR lines
        # usually name the actual cause (port in use, bad config, ...).
        first_errors = self._first_errors()
        if first_errors:
            parts.append("--- first errors ---\n" + "\n".join(first_errors))
        log_tail = tail(self.log_file)
        parts.append(f"--- last lines of {self.log_file} ---\n{log_tail or '(empty)'}")
        jvm_tail = tail(self.stdout_file, 15)
        if jvm_tail:
            parts.append(f"--- last lines of {self.stdout_file} ---\n{jvm_tail}")
        return LocalKafkaError("\n".join(parts))

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
            if accepts_connections(self.port) and metadata_ok(
                self.bootstrap_servers, min(5.0, remaining)
            ):
                return
            time.sleep(0.25)

    def _terminate(self, *, graceful: bool) -> None:
        proc = self._proc
        if proc is None:
            return
        # The watchdog first: it must never signal a pid this process has already reaped.
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
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
        clear_record(self.data_dir)
        _live_brokers.discard(self)
