"""The broker's configuration: server.properties, log4j2 and the SASL listeners' users."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from consumer.localkafka.machine import LOOPBACK

_MECHANISMS = "PLAIN,SCRAM-SHA-512"


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

    def scram_arguments(self) -> list[str]:
        """StorageTool format arguments that create every user's SCRAM credential."""
        return [
            arg
            for name, password in self.users.items()
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]


@dataclass(frozen=True)
class Listeners:
    """The broker's ports on loopback; a SASL port is None when that listener is off."""

    plaintext: int
    controller: int
    sasl_plaintext: int | None = None
    sasl_ssl: int | None = None

    def client_listeners(self) -> list[str]:
        listeners = [f"PLAINTEXT://{LOOPBACK}:{self.plaintext}"]
        if self.sasl_plaintext is not None:
            listeners.append(f"SASL_PLAINTEXT://{LOOPBACK}:{self.sasl_plaintext}")
        if self.sasl_ssl is not None:
            listeners.append(f"SASL_SSL://{LOOPBACK}:{self.sasl_ssl}")
        return listeners


def random_cluster_id() -> str:
    # Kafka's Uuid.toString(): URL-safe base64 without padding; Kafka itself never
    # hands out ids starting with '-' because CLI parsers mistake them for options.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def read_properties(path: Path) -> dict[str, str]:
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


def port_of(listeners: str, name: str) -> int | None:
    """The port of listener `name` in a `listeners` property value, if it has one."""
    for listener in listeners.split(","):
        if listener.startswith(f"{name}://"):
            return int(listener.rsplit(":", 1)[1])
    return None


def server_properties(
    listeners: Listeners, kafka_data: Path, sasl: SaslListeners | None
) -> dict[str, str]:
    """A single-node KRaft broker (combined broker+controller) tuned for tests."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": ",".join(
            [*listeners.client_listeners(), f"CONTROLLER://{LOOPBACK}:{listeners.controller}"]
        ),
        "advertised.listeners": ",".join(listeners.client_listeners()),
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
            "SASL_SSL:SASL_SSL"
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        # KIP-853 dynamic quorum; formatted with --standalone.
        "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{listeners.controller}",
        "log.dirs": str(kafka_data),
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
        **_sasl_properties(sasl),
    }


def _sasl_properties(sasl: SaslListeners | None) -> dict[str, str]:
    if sasl is None:
        return {}
    plain_users = " ".join(f'user_{n}="{p}"' for n, p in sasl.users.items())
    props = {"sasl.enabled.mechanisms": _MECHANISMS}
    names = ["sasl_plaintext"] + (["sasl_ssl"] if sasl.keystore_pem else [])
    for name in names:
        prefix = f"listener.name.{name}"
        props[f"{prefix}.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        )
        props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    if sasl.keystore_pem is not None:
        props["listener.name.sasl_ssl.ssl.keystore.type"] = "PEM"
        props["listener.name.sasl_ssl.ssl.keystore.location"] = str(sasl.keystore_pem)
    return props


def log4j2_properties(log_file: Path) -> str:
    """Broker logs to a rolling file (10 MB x 3), client chatter at WARN."""
    return f"""status = warn
name = puraify-local-kafka
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
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
