"""Broker outages as the engine's own events, instead of aiokafka's reconnect chatter.

While a broker is away, every aiokafka client of the engine (the group consumer, the admin
client, the log producer, each block's transactional producer) retries its connection and logs
each failure at WARNING or ERROR: hundreds of lines per outage that say the same thing, and at
start-up a few `GroupCoordinatorNotAvailableError` lines before the group is found. Those
records are recognised here by their format string (checked against aiokafka 0.14), logged at
debug, and turned into one `broker.unreachable` per broker per outage (with the first cause);
a probe then connects to the broker every `probe_every_s` and reports `broker.recovered` once
it accepts connections again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import structlog

# Connection-level failures naming the node: (format string, index of the node id in args,
# index of the cause). aiokafka retries every one of these itself.
_NODE_FAILURES: dict[str, tuple[int, int]] = {
    "Unable connect to node with id %s: %s": (0, 1),
    "Unable to request metadata from node with id %s: %r": (0, 1),
    "Failed fetch messages from %s: %s": (0, 1),
    "Failed fetch offsets from %s: %s": (0, 1),
    "Error sending %s to node %s [%s] -- marking coordinator dead": (1, 2),
    "Cannot send %r to %s: %r": (1, 2),
}
# The same naming a bootstrap address instead of a node id: (host, port, cause).
_ADDRESS_FAILURES = {
    'Unable connect to "%s:%s": %s',
    'Unable to request metadata from "%s:%s": %s',
}
# Retried by aiokafka, and said once more by the events above (or, at start-up, before the
# group's coordinator is known): debug.
_CHATTER = {
    "Unable to update metadata from %s",
    "Group Coordinator Request failed: %s",
    "FindCoordinator Request failed: %s",
    "Heartbeat send request failed: %s. Will retry.",
    "Heartbeat session expired - marking coordinator dead",
    "Could not send %r: %r",
    "Got error produce response: %s",
    "OffsetCommit failed before join, ignoring: %s",
    "Marking the coordinator dead (node %s)for group %s.",
}


class BrokerWatch:
    def __init__(self, probe_every_s: float = 1.0) -> None:
        self._probe_every_s = probe_every_s
        self._addresses: dict[str, tuple[str, int]] = {}  # node id (as text) -> host, port
        self._down: dict[str, asyncio.Task[None] | None] = {}  # broker -> its probe
        self._log = structlog.get_logger()

    def know(self, brokers: Mapping[Any, tuple[str, int]]) -> None:
        """The cluster's brokers (node id -> host, port), for probing and naming them."""
        self._addresses.update({str(node): address for node, address in brokers.items()})

    def level_for(self, record: logging.LogRecord, level: int) -> int:
        """The level a library record is logged at; a connection failure also reports its
        broker unreachable (once per outage)."""
        if not record.name.startswith("aiokafka"):
            return level
        message = record.msg if isinstance(record.msg, str) else ""
        args = record.args if isinstance(record.args, tuple) else ()
        if message in _NODE_FAILURES:
            node_at, cause_at = _NODE_FAILURES[message]
            if len(args) > max(node_at, cause_at):
                node = str(args[node_at])
                self._unreachable(node, self._addresses.get(node), args[cause_at])
            return logging.DEBUG
        if message in _ADDRESS_FAILURES:
            if len(args) >= 3:
                port = str(args[1])
                address = (str(args[0]), int(port)) if port.isdigit() else None
                self._unreachable(self._name(address) or f"{args[0]}:{args[1]}", address, args[2])
            return logging.DEBUG
        if message in _CHATTER:
            return logging.DEBUG
        return level

    def _name(self, address: tuple[str, int] | None) -> str | None:
        """The node id of a known broker at `address` (a bootstrap address is one of them)."""
        for node, known in self._addresses.items():
            if known == address:
                return node
        return None

    @property
    def unreachable(self) -> set[str]:
        return set(self._down)

    def _unreachable(self, broker: str, address: tuple[str, int] | None, cause: Any) -> None:
        if broker in self._down:
            return
        self._log.warning(
            "broker.unreachable",
            broker=broker,
            address=None if address is None else f"{address[0]}:{address[1]}",
            cause=_cause(cause),
        )
        probe = None
        if address is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to probe with
                probe = asyncio.get_running_loop().create_task(self._probe(broker, address))
        self._down[broker] = probe

    async def _probe(self, broker: str, address: tuple[str, int]) -> None:
        since = time.monotonic()
        while True:
            await asyncio.sleep(self._probe_every_s)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(*address), 2.0)
            except (OSError, TimeoutError):
                continue
            writer.close()
            break
        self._down.pop(broker, None)
        self._log.info(
            "broker.recovered",
            broker=broker,
            address=f"{address[0]}:{address[1]}",
            down_s=round(time.monotonic() - since + self._probe_every_s, 1),
        )

    def close(self) -> None:
        for probe in self._down.values():
            if probe is not None:
                probe.cancel()
        self._down.clear()


def _cause(cause: Any) -> str:
    if isinstance(cause, BaseException):
        text = str(cause).strip()
        return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return str(cause)


# One per process, as the logging configuration it hooks into.
BROKERS = BrokerWatch()
