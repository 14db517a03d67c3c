"""A real single-node Apache Kafka (KRaft) for tests, CI and local development.

``kafka_broker()`` picks, in order: an externally provided broker
(``KAFKA_BOOTSTRAP_SERVERS``), a Docker container via testcontainers, or a broker
run straight from the Maven Central jars (``LocalKafka``), which needs only Java 17+
and Maven.  The Maven path exists because CI and developer machines often have no
Docker engine, and a real broker is the only honest test of transactions.
``python -m consumer.localkafka --port 9092`` runs one in the foreground.

Modules, one job each: ``maven`` (the jars), ``config`` (server.properties, SASL users),
``jvm`` (the java command, storage format), ``broker`` (``LocalKafka``), ``readiness``
(is it usable), ``containers`` (Docker), ``provider`` (``kafka_broker``), ``machine``
(cache dir, ports, log tails), ``__main__`` (the foreground command).
"""

from consumer.localkafka.broker import LocalKafka
from consumer.localkafka.config import SaslListeners
from consumer.localkafka.containers import docker_available
from consumer.localkafka.machine import cache_dir, free_port
from consumer.localkafka.maven import KAFKA_VERSION, ensure_kafka_libs
from consumer.localkafka.provider import kafka_broker

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "SaslListeners",
    "cache_dir",
    "docker_available",
    "ensure_kafka_libs",
    "free_port",
    "kafka_broker",
]
