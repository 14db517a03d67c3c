"""The broker's jars, resolved once from Maven Central into the cache (Java and Maven only)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from consumer.localkafka.machine import (
    LOG_TAIL_LINES,
    LocalKafkaError,
    Logger,
    cache_dir,
    print_to_stderr,
)

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
_READY_MARKER = ".resolved"


def pom(version: str) -> str:
    """A throw-away POM whose runtime dependencies are exactly the broker's classpath."""
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
def file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """An exclusive flock on `path`, waited for at most `timeout_s` (then TimeoutError)."""
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
    with file_lock(cache_dir() / f"kafka-{version}.lock", _LOCK_TIMEOUT_S):
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
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
        proc = _copy_dependencies(mvn, version, staging)
        if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            output = "\n".join((proc.stdout + proc.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise LocalKafkaError(
                f"Maven failed to resolve org.apache.kafka:kafka_2.13:{version} "
                f"(exit {proc.returncode}):\n{output}"
            )
        if libs.exists():
            shutil.rmtree(libs)
        staging.rename(libs)
        marker.write_text(f"{time.time()}\n", encoding="utf-8")
        log(f"resolved Kafka {version} in {time.monotonic() - started:.1f}s")
    return libs


def _copy_dependencies(mvn: str, version: str, staging: Path) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="puraify-kafka-pom-") as tmp:
        pom_file = Path(tmp) / "pom.xml"
        pom_file.write_text(pom(version), encoding="utf-8")
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(pom_file),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            return subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_MAVEN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise LocalKafkaError(
                f"Maven did not resolve Kafka {version} within {_MAVEN_TIMEOUT_S:.0f}s"
            ) from exc
