"""The engine: requests in, actions run, envelopes out. The consume loop lives here.

A record's path, left to right: `_intake_loop` fetches it and hands it to the scheduler in its
key's lane; `_process` decodes it, runs the action (or rejects it), publishes exactly one
envelope, and marks its offset done; `_commit_loop` commits the contiguous watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from structlog.typing import FilteringBoundLogger

from actions import ActionRegistry, ActionRunner, EgressPolicy, default_registry, guarded_client
from actions.egress import Resolver, parse_networks, system_resolver
from consumer.credentials import CredentialCache, VaultEngineClient
from consumer.intake import Rejected, decode_record
from consumer.logging import KafkaLogSink, get_logger
from consumer.metrics import EngineMetrics
from consumer.offsets import OffsetTracker, PartitionOffsets
from consumer.ops_server import OpsServer, serve_ops
from consumer.publisher import DeadLetter, ResultPublisher, dead_letter_headers
from consumer.scheduler import KeyedScheduler
from consumer.settings import EngineSettings
from consumer.topics import ensure_topics
from consumer.tracing import NoTracing, build_tracing
from schemas import ErrorCode, ResultEnvelope, error_envelope

_FETCH_TIMEOUT_MS = 200
_MAX_FETCH_RECORDS = 1000


@dataclass(frozen=True)
class _Work:
    record: Any  # aiokafka ConsumerRecord
    offsets: PartitionOffsets


@dataclass(frozen=True)
class _Outcome:
    envelope: ResultEnvelope
    traceparent: str | None = None
    dead_letter: DeadLetter | None = None


@dataclass
class EngineState:
    """What health checks and tests observe."""

    assigned: set[TopicPartition] = field(default_factory=set)
    paused: bool = False
    consumer: AIOKafkaConsumer | None = None  # the group consumer, once started (readiness)


class Engine:
    def __init__(
        self,
        settings: EngineSettings,
        *,
        registry: ActionRegistry | None = None,
        resolver: Resolver = system_resolver,
        log_sink: KafkaLogSink | None = None,
        metrics: EngineMetrics | None = None,
        tracing: NoTracing | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or default_registry()
        self.state = EngineState()
        self._resolver = resolver
        self._log_sink = log_sink
        self._log = get_logger()
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._scheduler: KeyedScheduler[_Work] = KeyedScheduler(
            settings.max_in_flight, self._process
        )
        self._commit_lock = asyncio.Lock()
        # ops: metrics and the /healthz, /readyz, /metrics server (consumer/ops_server.py)
        self.metrics = metrics or EngineMetrics(self.registry.names())
        self.metrics.watch_gauges(
            lambda: self._scheduler.running, lambda: self._scheduler.held, lambda: self.state.paused
        )
        self.ops: OpsServer | None = None
        self.tracing = tracing or build_tracing(settings)  # ops: OpenTelemetry, off by default

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then drain, commit and close. Returns normally on shutdown."""
        settings = self.settings
        kafka = settings.kafka_client_options()
        async with contextlib.AsyncExitStack() as stack:
            self.ops = await stack.enter_async_context(serve_ops(self))  # ops
            stack.callback(self.tracing.shutdown)  # ops
            if settings.create_topics:
                await ensure_topics(settings)
            api_http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False)
            )
            egress_http = await stack.enter_async_context(
                guarded_client(
                    EgressPolicy(parse_networks(settings.http_allowed_networks), self._resolver)
                )
            )
            vault_http = await stack.enter_async_context(
                httpx.AsyncClient(timeout=httpx.Timeout(settings.vault_timeout_s))
            )
            vault = VaultEngineClient(settings.vault_url, vault_http, settings.vault_token)
            credentials = CredentialCache(
                vault.fetch, settings.vault_cache_ttl_s, settings.vault_cache_max_entries
            )
            self.metrics.watch_credentials(credentials)  # ops
            self._runner = ActionRunner(
                registry=self.registry,
                credentials=credentials,
                http=api_http,
                egress_http=egress_http,
                config=settings.action_config(),
                retry=settings.retry_policy(),
                attempt_timeout_s=settings.action_timeout_s,
            )
            producer = AIOKafkaProducer(
                **kafka,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                request_timeout_ms=30_000,
                # A dead letter is the original record plus headers: leave room for both.
                max_request_size=max(1_048_576, settings.max_record_bytes) + 65_536,
            )
            await producer.start()
            stack.push_async_callback(producer.stop)
            self._publisher = ResultPublisher(
                producer, settings.results_topic, settings.dead_letter_topic
            )
            if self._log_sink is not None:
                sink_task = asyncio.create_task(self._log_sink.run(producer, settings.logs_topic))
                stack.push_async_callback(self._stop_log_sink, self._log_sink, sink_task, producer)

            consumer = AIOKafkaConsumer(
                **kafka,
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                session_timeout_ms=settings.session_timeout_ms,
                rebalance_timeout_ms=settings.rebalance_timeout_ms,
                max_poll_interval_ms=max(300_000, settings.rebalance_timeout_ms),
            )
            consumer.subscribe([settings.requests_topic], listener=_Rebalance(self))
            await consumer.start()
            self._consumer = consumer
            self.state.consumer = consumer  # ops: readiness
            self.metrics.watch_consumer(consumer)  # ops: lag
            try:
                self._log.info(
                    "engine.started",
                    topic=settings.requests_topic,
                    group_id=settings.group_id,
                    actions=self.registry.names(),
                    max_in_flight=settings.max_in_flight,
                )
                commit_task = asyncio.create_task(self._commit_loop(stop))
                await self._intake_loop(stop)
                await commit_task
                await self._shutdown()
            finally:
                await consumer.stop()
                self._log.info("engine.stopped")

    async def _intake_loop(self, stop: asyncio.Event) -> None:
        consumer, scheduler, limit = self._consumer, self._scheduler, self.settings.max_buffered
        while not stop.is_set():
            room = limit - scheduler.held
            # Backpressure: a full buffer pauses fetching instead of growing without bound.
            # getmany() keeps being called so the consumer stays in its group.
            if room <= 0 and not self.state.paused:
                consumer.pause(*consumer.assignment())
                self.state.paused = True
            elif self.state.paused and scheduler.held <= limit // 2:
                consumer.resume(*consumer.assignment())
                self.state.paused = False
            batch = await consumer.getmany(
                timeout_ms=_FETCH_TIMEOUT_MS, max_records=max(1, min(room, _MAX_FETCH_RECORDS))
            )
            for tp, records in batch.items():
                self.metrics.consumed(tp.topic, tp.partition, len(records))  # ops
                for record in records:
                    offsets = self._offsets.add(tp, record.offset)
                    scheduler.submit(tp, record.key or None, _Work(record, offsets))

    async def _process(self, work: _Work) -> None:
        """One record -> exactly one envelope (and a dead letter if unreadable) -> offset done."""
        record = work.record
        try:
            outcome = await self._outcome(record)
        except Exception:
            # A bug must not cost the record its envelope, nor stall the partition's watermark.
            self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
            now = datetime.now(UTC)
            outcome = _Outcome(
                error_envelope(
                    f"{record.topic}:{record.partition}:{record.offset}",
                    ErrorCode.INTERNAL_ERROR,
                    "the engine failed on this record (bug)",
                    started_at=now,
                    finished_at=now,
                ),
            )
        self.metrics.envelope(outcome.envelope)  # ops
        await self._publisher.publish(
            outcome.envelope, traceparent=outcome.traceparent, dead_letter=outcome.dead_letter
        )
        work.offsets.done(record.offset)

    async def _outcome(self, record: Any) -> _Outcome:
        decoded = decode_record(
            record.value,
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            max_bytes=self.settings.max_record_bytes,
        )
        log = get_logger(
            request_id=decoded.request_id,
            partition=record.partition,
            offset=record.offset,
            **({"traceparent": decoded.traceparent} if decoded.traceparent else {}),
        )
        if isinstance(decoded, Rejected):
            headers = dead_letter_headers(
                record.headers,
                decoded,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
            return _Outcome(
                self._rejection(decoded, log),
                decoded.traceparent,
                (record.key, record.value, headers),
            )
        log = log.bind(action=decoded.request.action, project=decoded.request.project)
        log.info("request.received")
        execution = self._runner.execute(decoded.request, decoded.request_id, log)
        envelope = await self.tracing.run(decoded, execution)  # ops: a span when tracing is on
        return _Outcome(envelope, decoded.traceparent)

    def _rejection(self, rejected: Rejected, log: FilteringBoundLogger) -> ResultEnvelope:
        now = datetime.now(UTC)
        log.warning(
            "request.invalid",
            error_code=rejected.code.value,
            error_message=rejected.message,
            action=rejected.action,
            project=rejected.project,
        )
        return error_envelope(
            rejected.request_id,
            rejected.code,
            rejected.message,
            started_at=now,
            finished_at=now,
            action=rejected.action,
            project=rejected.project,
        )

    async def _commit_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.commit_interval_s)
            await self.commit()

    async def commit(self, partitions: Sequence[TopicPartition] | None = None) -> None:
        """Commit the watermarks that moved, of `partitions` or of the whole assignment."""
        async with self._commit_lock:
            chosen = list(self._consumer.assignment()) if partitions is None else list(partitions)
            offsets = self._offsets.to_commit(chosen)
            if not offsets:
                return
            started = time.monotonic()  # ops
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                # A rebalance in progress or a broker away: the next tick tries again, and
                # what is not committed runs again (at-least-once), never skipped.
                self._log.warning("commit.failed", error=type(exc).__name__)
                self.metrics.commit_failed()  # ops
                return
            self.metrics.committed(time.monotonic() - started)  # ops
            self._offsets.committed(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        self._log.info("partitions.revoked", partitions=_names(revoked))
        dropped = self._scheduler.discard_queued(set(revoked))
        bound = min(self.settings.drain_timeout_s, self.settings.rebalance_timeout_ms / 2000)
        abandoned = await self._scheduler.drain(set(revoked), bound)
        await self.commit(list(revoked))
        for tp in revoked:
            self._offsets.forget(tp)
            self.state.assigned.discard(tp)
        if dropped or abandoned:
            self._log.info("partitions.released", not_started=dropped, abandoned=abandoned)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.state.assigned |= assigned
        if self.state.paused and assigned:
            # Keep newly assigned partitions paused like the rest while the buffer is full.
            self._consumer.pause(*assigned)
        self._log.info("partitions.assigned", partitions=_names(assigned))

    async def _shutdown(self) -> None:
        self._log.info(
            "engine.stopping", in_flight=self._scheduler.running, held=self._scheduler.held
        )
        everything = set(self._consumer.assignment())
        dropped = self._scheduler.discard_queued(everything)
        abandoned = await self._scheduler.drain(None, self.settings.drain_timeout_s)
        await self.commit()
        self._log.info("engine.drained", not_started=dropped, abandoned=abandoned)

    async def _stop_log_sink(
        self, sink: KafkaLogSink, task: asyncio.Task[None], producer: AIOKafkaProducer
    ) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sink.flush(producer, self.settings.logs_topic), 5)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka logs and swallows exceptions raised here: handle them ourselves."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._engine.on_revoked(set(revoked))
        except Exception:
            self._engine._log.exception("partitions.revoke_failed")

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._engine.on_assigned(set(assigned))
        except Exception:
            self._engine._log.exception("partitions.assign_failed")


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
