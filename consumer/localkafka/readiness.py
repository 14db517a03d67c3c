"""Is a broker usable: it accepts connections and answers a metadata request."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket

from consumer.localkafka.machine import LOOPBACK


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


async def _probe_metadata(bootstrap_servers: str, timeout_s: float) -> int:
    """The number of brokers the metadata names (0: no answer)."""
    from aiokafka import AIOKafkaClient  # noqa: PLC0415 - keep module import cheap

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return len(client.cluster.brokers())
    except Exception:
        return 0
    finally:
        await client.close()


def brokers_registered(bootstrap_servers: str, timeout_s: float) -> int:
    """How many brokers the cluster's metadata names, as one of `bootstrap_servers` says."""
    # Run on a private loop in a worker thread: start()/restart() must also work when
    # called from inside a running event loop (async tests), where asyncio.run fails.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _probe_metadata(bootstrap_servers, timeout_s))
        try:
            return future.result(timeout=timeout_s + 5)
        except Exception:
            return 0


def metadata_ok(bootstrap_servers: str, timeout_s: float) -> bool:
    return brokers_registered(bootstrap_servers, timeout_s) > 0
