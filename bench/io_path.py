"""In-process cost of an `http_request` record, no broker: `python -m bench.io_path`.

Feeds `http_request` records (many keys) through the engine's own stages, built as the
application builds them (the guarded egress client, the credential cache's per-record view,
in-process idempotency records, circuit breakers, the rate limiter, the key scheduler at
`--limit` in flight, rendering, the log events to a discarded stream and the logs sink)
against the loopback target (`bench/http_target.py`, its own process), then the egress client
alone on the same calls in the same process. Prints CPU per call for both and their
difference: the engine's own per-call path without Kafka. A broker-free view of what
`bench io` measures, for profiling (`py-spy record -- python -m bench.io_path`).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import time

from actions.egress import EgressPolicy, guarded_client, parse_networks
from actions.ratelimit import RateLimiter
from actions.registry import default_registry
from actions.runtime.circuit import CircuitBreakers
from actions.runtime.idempotency import IdempotencyRecords, LocalSuccesses
from actions.runtime.runner import ActionRunner
from bench.hot_path import Channel as _Channel
from bench.hot_path import Record
from bench.processes import cpu_seconds, free_port
from consumer.credentials.cache import CredentialCache
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging, flush_logs
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.pipeline.scheduler import KeyedScheduler


class Channel(_Channel):
    """Counts the envelopes that say success, too (a figure of failed calls means nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.succeeded = 0

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        super().finish(offset, messages)
        self.succeeded += sum(b'"status":"success"' in (m.value or b"") for m in messages)


def records(port: int, count: int, keys: int, latency_ms: int, base: int) -> list[Record]:
    out = []
    for i in range(count):
        key = f"key-{i % keys}"
        url = f"http://127.0.0.1:{port}/d/{latency_ms}/{key}/{(base + i) // keys}"
        value = json.dumps(
            {
                "request_id": f"io-{base + i}",
                "action": "http_request",
                "project": "bench",
                "params": {"url": url},
            },
            separators=(",", ":"),
        ).encode()
        out.append(Record(value, base + i, key=key.encode()))
    return out


async def _no_fetch(project: str, service: str) -> object:
    raise AssertionError("no credential is asked for")


class _FakeEgress:
    """Answers every request after the latency without any I/O: the engine's path alone."""

    def __init__(self, client: object, latency_ms: int) -> None:
        self._client = client
        self._latency_s = latency_ms / 1000

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    def for_project(self, project: str) -> _FakeEgress:
        return self

    async def request(self, method: str, url: object, **options: object) -> object:
        from actions.http import HttpResponse  # noqa: PLC0415

        await asyncio.sleep(self._latency_s)
        return HttpResponse(200, {"content-type": "application/json"}, b'{"ok":true}')


async def engine_path(
    port: int, calls: int, keys: int, latency_ms: int, limit: int, *, fake: bool = False
) -> tuple[float, float, int]:
    """(CPU s per call, wall s, connections opened) through scheduler + processor + runner."""
    sink = KafkaLogSink(max_queued=calls * 10)
    configure_logging("info", sink=sink, stream=io.StringIO())
    registry = default_registry()
    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    async with guarded_client(policy, max_connections=limit) as egress:
        credentials = CredentialCache(_no_fetch)  # type: ignore[arg-type]
        runner = ActionRunner(
            registry=registry,
            credentials=credentials,
            http=egress,
            egress_http=_FakeEgress(egress, latency_ms) if fake else egress,  # type: ignore[arg-type]
            limiter=RateLimiter({}),
            breakers=CircuitBreakers(),
            idempotency=IdempotencyRecords(LocalSuccesses()),
        )
        processor = RecordProcessor(
            runner,
            OutcomeRenderer("execution.results", "execution.dead-letter", 1_200_000),
            IntakeLimits(1_048_576, 64, 262_144),
            metrics=EngineMetrics(registry.names()),
            tracing=NO_TRACING,
            credentials=credentials,
        )
        scheduler: KeyedScheduler[Work] = KeyedScheduler(
            limit, processor.run, max_per_project=limit
        )
        channel = Channel()

        async def feed(batch: list[Record]) -> None:
            for record in batch:
                decoded = processor.intake(record)
                scheduler.submit(0, record.key, "proj", Work(record, decoded, channel, time.time()))
            while scheduler.held:
                await asyncio.sleep(0.005)
                flush_logs()
                sink._queue.clear()

        await feed(records(port, limit, keys, latency_ms, 1_000_000))  # connections up
        opened = egress.connections_opened
        channel.count = channel.succeeded = 0
        wall, cpu = time.perf_counter(), time.process_time()
        await feed(records(port, calls, keys, latency_ms, 0))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert channel.count == calls, channel.count
        assert channel.succeeded == calls, f"{channel.succeeded} of {calls} succeeded"
        return cpu / calls, wall, egress.connections_opened - opened


async def client_alone(
    port: int, calls: int, keys: int, latency_ms: int, limit: int
) -> tuple[float, float]:
    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    async with guarded_client(policy, max_connections=limit) as client:
        room = asyncio.Semaphore(limit)

        async def call(i: int) -> None:
            async with room:
                url = f"http://127.0.0.1:{port}/d/{latency_ms}/alone-{i % keys}/{i // keys}"
                response = await client.get(url)
                assert response.status == 200
                response.json()

        await asyncio.gather(*(call(i) for i in range(limit)))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(call(i) for i in range(calls)))
        return (time.process_time() - cpu) / calls, time.perf_counter() - wall


async def raw_aiohttp(
    port: int, calls: int, keys: int, latency_ms: int, limit: int
) -> tuple[float, float]:
    """A plain aiohttp session (no guard, nothing checked): the floor under the client."""
    import aiohttp  # noqa: PLC0415

    connector = aiohttp.TCPConnector(limit=limit)
    async with aiohttp.ClientSession(connector=connector) as session:
        room = asyncio.Semaphore(limit)

        async def call(i: int) -> None:
            async with room:
                url = f"http://127.0.0.1:{port}/d/{latency_ms}/raw-{i % keys}/{i // keys}"
                async with session.get(url) as response:
                    assert response.status == 200
                    json.loads(await response.read())

        await asyncio.gather(*(call(i) for i in range(limit)))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(call(i) for i in range(calls)))
        return (time.process_time() - cpu) / calls, time.perf_counter() - wall


class _FloorConnection(asyncio.Protocol):
    """One kept-alive connection of the floor: writes a request, waits for its whole answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[bytes] | None = None
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buffer[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self._buffer) >= end + 4 + length and self.answer is not None:
            body, self._buffer = self._buffer[end + 4 : end + 4 + length], b""
            self.answer.set_result(body)


async def floor(
    port: int, calls: int, keys: int, latency_ms: int, limit: int
) -> tuple[float, float]:
    """No HTTP library at all: `limit` asyncio connections, a request written as bytes, the
    answer framed by its Content-Length. What the event loop and the sockets cost per call:
    the floor under any HTTP client in this process (not a client: nothing is checked)."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[_FloorConnection] = asyncio.Queue()
    connections = []
    for _ in range(limit):
        _, connection = await loop.create_connection(_FloorConnection, "127.0.0.1", port)
        connections.append(connection)
        idle.put_nowait(connection)

    async def call(i: int) -> None:
        connection = await idle.get()
        connection.answer = loop.create_future()
        assert connection.transport is not None
        connection.transport.write(
            f"GET /d/{latency_ms}/floor-{i % keys}/{i // keys} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n\r\n".encode()
        )
        json.loads(await connection.answer)
        idle.put_nowait(connection)

    await asyncio.gather(*(call(i) for i in range(limit)))
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(call(i) for i in range(calls)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return cpu / calls, wall


# What is measured alone beside the engine path: (--only name, label, measurement).
_ALONE = (
    ("client", "client alone", client_alone),
    ("raw", "plain aiohttp", raw_aiohttp),
    ("floor", "floor (asyncio sockets, no HTTP library)", floor),
)


async def main_async(args: argparse.Namespace) -> None:
    port = free_port()
    target = subprocess.Popen(  # noqa: ASYNC220 (once, before anything is measured)
        [sys.executable, "-m", "bench.http_target", str(port)], stdout=subprocess.PIPE
    )
    try:
        assert target.stdout is not None
        target.stdout.readline()  # "ready"
        run = (port, args.calls, args.keys, args.latency_ms, args.limit)
        for round_ in range(args.rounds):
            target_cpu = cpu_seconds(target.pid)
            if args.only in ("both", "engine"):
                engine, wall, opened = await engine_path(*run, fake=args.fake_http)
                print(
                    f"round {round_ + 1}: engine path {engine * 1e6:.0f} us CPU per call, "
                    f"{args.calls / wall:,.0f} calls/s, {opened} connections opened",
                    flush=True,
                )
            alone = 0.0
            for name, label, measure in _ALONE:
                if args.only in ("both", name):
                    per_call, wall = await measure(*run)
                    if name == "client":
                        alone = per_call
                    print(
                        f"round {round_ + 1}: {label} {per_call * 1e6:.0f} us CPU per call, "
                        f"{args.calls / wall:,.0f} calls/s",
                        flush=True,
                    )
            if args.only == "both":
                print(f"round {round_ + 1}: engine minus client {(engine - alone) * 1e6:.0f} us")
            # The target is not the bottleneck while its CPU per call stays well under ours.
            runs = {"both": 4}.get(args.only, 1)
            target_per_call = (cpu_seconds(target.pid) - target_cpu) / (runs * args.calls)
            print(f"round {round_ + 1}: the target's CPU per call {target_per_call * 1e6:.0f} us")
    finally:
        target.terminate()
        target.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.io_path", description=__doc__)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--fake-http", action="store_true", help="the engine path with no HTTP (a timer)"
    )
    parser.add_argument(
        "--only", choices=("both", "engine", "client", "raw", "floor"), default="both"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
