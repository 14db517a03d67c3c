"""The broker's JVM: which java, its command line, and the one-off storage format."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from consumer.localkafka.config import SaslListeners, random_cluster_id
from consumer.localkafka.machine import LOG_TAIL_LINES, LocalKafkaError


def java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise LocalKafkaError("Java 17+ ('java') is needed to run the local Kafka broker")
    return found


def java_command(libs: Path, log4j_config: Path, main: str, *args: str) -> list[str]:
    """`java ... main args` with the broker's classpath and a heap sized for tests."""
    return [
        java(),
        "-Xms128m",
        "-Xmx512m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        "-Djava.net.preferIPv4Stack=true",
        f"-Dlog4j2.configurationFile={log4j_config}",
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def format_storage(
    libs: Path,
    *,
    log4j_config: Path,
    server_config: Path,
    kafka_data: Path,
    sasl: SaslListeners | None,
    deadline: float,
    cluster_id: str | None = None,
    standalone: bool = True,
) -> None:
    """`kafka.tools.StorageTool format --standalone`: a fresh cluster id, SCRAM users added.
    A node of a cluster with a static quorum (`controller.quorum.voters`) is formatted with the
    cluster's id and without `--standalone`."""
    cmd = java_command(
        libs,
        log4j_config,
        "kafka.tools.StorageTool",
        "format",
        "--config",
        str(server_config),
        "--cluster-id",
        cluster_id or random_cluster_id(),
        *(["--standalone"] if standalone else []),
        *(sasl.scram_arguments() if sasl else ()),
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
        raise LocalKafkaError(f"formatting Kafka storage in {kafka_data} timed out") from exc
    if proc.returncode != 0:
        output = "\n".join((proc.stdout + proc.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise LocalKafkaError(
            f"kafka.tools.StorageTool format failed (exit {proc.returncode}):\n{output}"
        )
