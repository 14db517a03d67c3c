"""`LocalKafkaCluster`: three KRaft nodes (each broker and controller) on loopback, with the
durability settings of a production cluster (replication 3, min ISR 2), for fault tests that
take a broker away while the others carry on.

Each node is a `LocalKafka` child JVM of its own (ports, data, logs) in one static controller
quorum (`controller.quorum.voters`): two nodes of three keep both the quorum and every
partition's ISR, so one node may be killed at any time.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from consumer.localkafka.broker import LocalKafka
from consumer.localkafka.config import random_cluster_id
from consumer.localkafka.jvm import format_storage
from consumer.localkafka.machine import LOOPBACK, free_port
from consumer.localkafka.maven import KAFKA_VERSION, ensure_kafka_libs
from consumer.localkafka.readiness import brokers_registered

_DURABILITY = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}


class ClusterNode(LocalKafka):
    """One node of a `LocalKafkaCluster`: its id, the cluster's quorum and durability."""

    def __init__(
        self,
        node_id: int,
        port: int,
        controller_port: int,
        data_dir: Path,
        cluster: LocalKafkaCluster,
    ) -> None:
        super().__init__(port=port, data_dir=data_dir, version=cluster.version)
        self.node_id = node_id
        self.controller_port = controller_port
        self._cluster = cluster

    def _properties(self) -> dict[str, str]:
        props = super()._properties()
        props.pop("controller.quorum.bootstrap.servers", None)
        props.update(_DURABILITY)
        props["node.id"] = str(self.node_id)
        props["controller.quorum.voters"] = self._cluster.voters
        return props

    def _format(self, libs: Path, deadline: float) -> None:
        format_storage(
            libs,
            log4j_config=self._log4j_config,
            server_config=self.config_path,
            kafka_data=self._kafka_data,
            sasl=None,
            deadline=deadline,
            cluster_id=self._cluster.cluster_id,
            standalone=False,
        )


class LocalKafkaCluster:
    """Three nodes; `kill(node_id)` is a crash (SIGKILL), `start_node` brings one back."""

    def __init__(self, nodes: int = 3, version: str = KAFKA_VERSION) -> None:
        self.version = version
        self.cluster_id = random_cluster_id()
        self.data_dir = Path(tempfile.mkdtemp(prefix="puraify-kafka-cluster-"))
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        self.voters = ",".join(
            f"{n}@{LOOPBACK}:{controller}" for n, (_, controller) in enumerate(ports, 1)
        )
        self.nodes = {
            n: ClusterNode(n, port, controller, self.data_dir / f"node-{n}", self)
            for n, (port, controller) in enumerate(ports, 1)
        }
        self.bootstrap_servers = ",".join(node.bootstrap_servers for node in self.nodes.values())

    def start(self, timeout_s: float = 180) -> None:
        ensure_kafka_libs(self.version)  # once, before the nodes start side by side
        # A node is ready only once a quorum of controllers is up: start them together.
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            for started in [pool.submit(n.start, timeout_s) for n in self.nodes.values()]:
                started.result()
        deadline = time.monotonic() + timeout_s
        while brokers_registered(self.bootstrap_servers, 5.0) < len(self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every broker of {self} registered in time")
            time.sleep(0.25)

    def kill(self, node_id: int) -> None:
        self.nodes[node_id].kill()

    def start_node(self, node_id: int, timeout_s: float = 120) -> None:
        self.nodes[node_id].start(timeout_s)

    def stop(self) -> None:
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.kill(), self.nodes.values()))
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalKafkaCluster({self.bootstrap_servers}, data_dir={self.data_dir})"
