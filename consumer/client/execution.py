"""`ExecutionClient`: a Gateway publishes a request and awaits its own envelope.

One client per process: one idempotent producer for the requests, one consumer (no group,
partitions assigned by hand, `read_committed`) on the process's reply topic, or on its assigned
partition of a shared one. Each call waits on a future keyed by its `request_id`; the reader
resolves it when the envelope's copy arrives. The request carries the id three ways (in its
body, in `request-id` and in `kafka_correlationId`): the engine echoes the correlation id on
the copy whatever becomes of the request, even an envelope it had to name by the record's
position.

Without a reply topic the client reads the shared results topic instead (every envelope of
the platform, filtered by key): what `send --wait` does where no reply topic is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.broker.metadata import partitions_of
from consumer.broker.settings import KafkaClientSettings
from consumer.ops.logging import get_logger
from consumer.pipeline.reply import REPLY_PARTITION, REPLY_TOPIC, SPRING_CORRELATION_ID

_FETCH_TIMEOUT_MS = 500
_READ_RETRY_S = 0.5


class ReplyTimeout(TimeoutError):
    """No envelope within the call's timeout. The request may still run: ask again with the
    same `request_id` (a request that succeeded is not run twice: its envelope says
    `deduplicated`)."""

    def __init__(self, request_id: str, timeout_s: float) -> None:
        super().__init__(f"no envelope for {request_id} within {timeout_s:g} s")
        self.request_id = request_id
        self.timeout_s = timeout_s


class ExecutionClient:
    """`async with ExecutionClient(settings, reply_topic="gateway.replies.7") as client:
    envelope = await client.execute("send_slack", "proj", {...}, timeout=10)`.

    `reply_topic` must be one the engine's `EXECUTION_REPLY_TOPICS` allows; `reply_partition`
    makes the client read (and name) only that partition of a topic shared by several
    processes. The topic must exist (the client reads from its end when it starts)."""

    def __init__(
        self,
        settings: KafkaClientSettings,
        *,
        reply_topic: str | None = None,
        reply_partition: int | None = None,
    ) -> None:
        if reply_partition is not None and reply_topic is None:
            raise ValueError("reply_partition needs a reply_topic")
        self._settings = settings
        self._reply_topic = reply_topic
        self._reply_partition = reply_partition
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reply_headers: list[tuple[str, bytes]] = []
        if reply_topic is not None:
            self._reply_headers.append((REPLY_TOPIC, reply_topic.encode()))
            if reply_partition is not None:
                self._reply_headers.append((REPLY_PARTITION, str(reply_partition).encode()))

    @property
    def pending(self) -> int:
        """Calls waiting for their envelope."""
        return len(self._waiting)

    async def start(self) -> None:
        options = self._settings.kafka_client_options()
        consumer = AIOKafkaConsumer(
            **options, isolation_level="read_committed", enable_auto_commit=False
        )
        producer: AIOKafkaProducer | None = None
        try:  # both stopped also when starting fails: no "Unclosed ..." at exit
            await consumer.start()
            topic = self._reply_topic or self._settings.results_topic
            if self._reply_partition is None:
                partitions = await partitions_of(consumer, topic)
            else:
                partitions = [TopicPartition(topic, self._reply_partition)]
            consumer.assign(partitions)
            # From the end, and resolved now: a reply to a call made after start() is never
            # before this position, however fast the engine answers.
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            producer = AIOKafkaProducer(**options, enable_idempotence=True)
            await producer.start()
        except BaseException:
            if producer is not None:
                await producer.stop()
            await consumer.stop()
            raise
        self._consumer, self._producer = consumer, producer
        self._reader = asyncio.create_task(self._read(consumer))

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        if self._producer is not None:
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        self._producer = self._consumer = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def execute(
        self,
        action: str,
        project: str,
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 (a call names its own bound; ReplyTimeout says whose)
        request_id: str | None = None,
        key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Publish the request and return its envelope (as JSON), or raise `ReplyTimeout`.
        `key` orders requests that share it (the requests topic's Kafka key)."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the client is not started")
        request_id = request_id or str(uuid.uuid4())
        if request_id in self._waiting:
            raise ValueError(f"a call with request_id {request_id!r} is already waiting")
        body: dict[str, Any] = {
            "request_id": request_id,
            "action": action,
            "project": project,
            "params": params,
        }
        if metadata is not None:
            body["metadata"] = metadata
        raw_id = request_id.encode()
        headers = [("request-id", raw_id), *self._reply_headers]
        if self._reply_topic is not None:
            headers.append((SPRING_CORRELATION_ID, raw_id))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            async with asyncio.timeout(timeout):
                await producer.send_and_wait(
                    self._settings.requests_topic,
                    json.dumps(body).encode(),
                    key=key.encode() if key is not None else None,
                    headers=headers,
                )
                value = await future
        except TimeoutError:
            raise ReplyTimeout(request_id, timeout) from None
        finally:
            self._waiting.pop(request_id, None)
        envelope: dict[str, Any] = json.loads(value)
        return envelope

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        waiting = self._waiting
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: aiokafka reconnects; keep reading
                get_logger().warning("client.read_failed", error=type(exc).__name__)
                await asyncio.sleep(_READ_RETRY_S)
                continue
            for records in batch.values():
                for record in records:
                    future = waiting.pop(_request_id(record), None)
                    if future is not None and not future.done():
                        future.set_result(record.value)


def _request_id(record: Any) -> str:
    """The call a record answers: its correlation id when it has one (a reply copy), else its
    key (the results topic's `request_id`)."""
    for name, value in record.headers:
        if name == SPRING_CORRELATION_ID:
            return bytes(value).decode("utf-8", "replace")
    return (record.key or b"").decode("utf-8", "replace")
