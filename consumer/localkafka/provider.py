"""`kafka_broker()`: a usable broker for tests and local runs, whichever way this machine allows."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from consumer.localkafka.broker import LocalKafka
from consumer.localkafka.containers import docker_available, start_docker_kafka
from consumer.localkafka.machine import Logger, print_to_stderr
from consumer.localkafka.maven import KAFKA_VERSION, ensure_kafka_libs


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
            container, bootstrap = start_docker_kafka(port, KAFKA_VERSION)
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
