"""ops/broker_events.py: a broker outage is one `broker.unreachable` per broker (and one
`broker.recovered`), aiokafka's reconnect chatter is debug, and no library record reaches the
logs topic."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from consumer.ops.broker_events import BROKERS
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging, flush_logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    library = logging.getLogger("aiokafka")
    library_level = library.level
    library.setLevel(logging.NOTSET)  # a command run in process may have quieted it
    yield
    library.setLevel(library_level)
    BROKERS.close()
    structlog.reset_defaults()
    root.handlers = handlers
    root.setLevel(level)


class Output:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.sink = KafkaLogSink()
        configure_logging("info", sink=self.sink, stream=self.stream)

    def events(self) -> list[dict[str, Any]]:
        flush_logs()
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def topic_events(self) -> list[str]:
        flush_logs()
        return [json.loads(value)["event"] for _, value in self.sink._queue]


def aiokafka_says(logger: str, level: int, message: str, *args: Any) -> None:
    """As aiokafka logs: a format string and its arguments."""
    logging.getLogger(logger).log(level, message, *args)


def refused(port: int) -> ConnectionRefusedError:
    return ConnectionRefusedError(111, f"Connect call failed ('127.0.0.1', {port})")


async def test_an_outage_is_one_event_per_broker_and_the_chatter_is_debug() -> None:
    out = Output()
    # A port nobody listens on: the probe keeps failing, no recovery is reported.
    with socket_closed() as port:
        BROKERS.know({1: ("127.0.0.1", port), 2: ("127.0.0.1", port + 1)})
        for _ in range(50):  # every client retrying, as during an outage
            aiokafka_says(
                "aiokafka.client",
                logging.ERROR,
                "Unable connect to node with id %s: %s",
                1,
                refused(port),
            )
            aiokafka_says(
                "aiokafka.consumer.fetcher",
                logging.ERROR,
                "Failed fetch messages from %s: %s",
                1,
                refused(port),
            )
        aiokafka_says(
            "aiokafka.client",
            logging.ERROR,
            'Unable connect to "%s:%s": %s',
            "127.0.0.1",
            port,
            refused(port),
        )
        aiokafka_says(
            "aiokafka.consumer.group_coordinator",
            logging.ERROR,
            "Group Coordinator Request failed: %s",
            "[Error 15] GroupCoordinatorNotAvailableError",
        )
        events = out.events()
    assert [e["event"] for e in events] == ["broker.unreachable"], "one event, no chatter"
    [event] = events
    assert event["broker"] == "1" and event["address"] == f"127.0.0.1:{port}"
    assert "ConnectionRefusedError" in event["cause"] and event["level"] == "warning"
    assert out.topic_events() == ["broker.unreachable"]


async def test_recovery_is_reported_once_the_broker_accepts_connections() -> None:
    out = Output()
    BROKERS._probe_every_s = 0.05
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        BROKERS.know({7: ("127.0.0.1", port)})
        aiokafka_says(
            "aiokafka.client", logging.ERROR, "Unable connect to node with id %s: %s", 7, "lost"
        )
        for _ in range(100):
            if not BROKERS.unreachable:
                break
            await asyncio.sleep(0.02)
        server.close()
    finally:
        BROKERS._probe_every_s = 1.0
    names = [e["event"] for e in out.events()]
    assert names == ["broker.unreachable", "broker.recovered"]
    aiokafka_says("aiokafka.client", logging.ERROR, "Unable connect to node with id %s: %s", 7, "x")
    assert [e["event"] for e in out.events()][-1] == "broker.unreachable", "a new outage"


def test_other_library_warnings_stay_on_stdout_and_never_reach_the_logs_topic() -> None:
    out = Output()
    aiokafka_says(
        "aiokafka.consumer.fetcher", logging.WARNING, "Not authorized to read from topic %s.", "t"
    )
    [event] = out.events()
    assert event["event"] == "library.log" and event["level"] == "warning"
    assert out.topic_events() == [], "the logs topic carries the engine's own events"


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A loopback port with nothing listening."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port
