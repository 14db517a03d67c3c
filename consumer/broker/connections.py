"""File descriptors: the engine's connections must fit the process's open-files limit.

A socket is a file descriptor. Containers commonly start processes with a soft `RLIMIT_NOFILE`
of 1,024 under a much higher hard limit; past the soft limit every new connection fails with
`[Errno 24] Too many open files`, which aiokafka reports as an unready node and retries for
ever. So the engine raises its soft limit to the hard one at start (as Go's runtime and
Kafka's own start scripts do), and, once it knows the cluster, exits at once when what it
needs still does not fit, naming the limit and the number.
"""

from __future__ import annotations

import resource

from aiokafka.admin import AIOKafkaAdminClient

# Python itself, the event loop, log files, the ops server's clients, the fleet store, DNS.
_BASELINE = 64


class OpenFilesLimitTooLow(Exception):
    """The hard open-files limit is below what this engine needs."""


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. macOS caps it below the hard limit: keep it
            return soft, hard
        soft = target
    return soft, hard


def descriptors_needed(*, brokers: int, blocks: int, http_connections: int) -> int:
    """An upper bound of the descriptors this engine opens: each block's transactional
    producer may connect to every broker (the leaders of the results, logs and dead-letter
    partitions) plus its transaction coordinator; the group consumer, the admin client and
    the log producer one per broker, plus their coordinators; the HTTP data plane its pools."""
    per_producer = brokers + 1
    kafka = blocks * per_producer + 3 * brokers + 3
    return kafka + http_connections + _BASELINE


def check_open_files(needed: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise OpenFilesLimitTooLow(
            f"the open-files limit (RLIMIT_NOFILE, `ulimit -n`) is {soft} even after raising "
            f"it to the hard limit, and this engine may need {needed} file descriptors "
            "(Kafka connections of its blocks of partitions, its HTTP connections): raise the "
            "container's nofile limit, or lower EXECUTION_PARTITION_BLOCKS or "
            "EXECUTION_MAX_IN_FLIGHT"
        )


async def cluster_brokers(admin: AIOKafkaAdminClient) -> dict[int, tuple[str, int]]:
    """The cluster's brokers: node id -> (host, port)."""
    cluster = await admin.describe_cluster()
    return {b["node_id"]: (b["host"], b["port"]) for b in cluster.get("brokers", ())}


async def check_open_files_for(
    admin: AIOKafkaAdminClient,
    topic: str,
    *,
    brokers: int,
    blocks: int,
    http_connections: int,
) -> int:
    """`check_open_files` for this cluster and this topic (one block at most per partition);
    returns the number needed."""
    # All topics: naming one in a metadata request may create it (auto.create.topics.enable).
    described = {t["topic"]: t for t in await admin.describe_topics()}
    partitions = len(described.get(topic, {}).get("partitions") or ()) or blocks
    needed = descriptors_needed(
        brokers=max(1, brokers), blocks=min(blocks, partitions), http_connections=http_connections
    )
    check_open_files(needed)
    return needed
