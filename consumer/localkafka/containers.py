"""The same broker in Docker (`apache/kafka` via testcontainers), where a Docker engine runs."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from consumer.localkafka.config import random_cluster_id
from consumer.localkafka.readiness import metadata_ok

if TYPE_CHECKING:
    # testcontainers is only a test extra; it is imported lazily where Docker is used.
    from testcontainers.core.container import DockerContainer


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


def start_docker_kafka(port: int | None, version: str) -> tuple[DockerContainer, str]:
    """A started container and its bootstrap address; the caller stops the container."""
    # testcontainers-python's KafkaContainer only drives Confluent images, so the
    # apache/kafka image is run the way testcontainers-java's org.testcontainers.kafka
    # does it: the container waits for a start script that knows the host-mapped port
    # to advertise, because that port is only known once the container exists.
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

    script = "/tmp/puraify_kafka_start.sh"
    container = (
        DockerContainer(f"apache/kafka:{version}")
        .with_env("CLUSTER_ID", random_cluster_id())
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
        if not metadata_ok(bootstrap, 30.0):
            raise RuntimeError(f"Kafka container at {bootstrap} logged startup but is unusable")
    except BaseException:
        container.stop()
        raise
    return container, bootstrap
