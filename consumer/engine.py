"""The engine: requests in, actions run, envelopes out. The consume loop lives here.

A record's path, left to right: `_intake_loop` fetches it, skips it if a previous owner of the
partition already finished it, and hands it to the scheduler in its key's lane; `_process`
decodes it, runs the action (or rejects it) and hands exactly one envelope (and a dead letter if
unreadable) to its partition's channel; the channel publishes them and commits the partition's
offset in one Kafka transaction (`consumer.partitions.channel`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from structlog.typing import FilteringBoundLogger

from actions import ActionRegistry, ActionRunner, EgressPolicy, default_registry, guarded_client
from actions.egress import Resolver, parse_networks, service_client, system_resolver
from consumer.broker.topics import ensure_topics
from consumer.credentials.backends import credential_fetch
from consumer.credentials.cache import CredentialCache
from consumer.ops.logging import KafkaLogSink, get_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.server import OpsServer, serve_ops
from consumer.ops.tracing import NoTracing, build_tracing
from consumer.partitions.channel import (
    AtLeastOnceSink,
    CommitSink,
    PartitionChannel,
    TransactionalSink,
)
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.pipeline.intake import Rejected, decode_record
from consumer.pipeline.rendering import DeadLetter, OutcomeRenderer, dead_letter_headers
from consumer.pipeline.scheduler import KeyedScheduler
from consumer.settings import EngineSettings
from consumer.state import build_state
from consumer.state.idempotency import reexecutes
from schemas import ErrorCode, ResultEnvelope, error_envelope

_FETCH_TIMEOUT_MS = 200
_MAX_FETCH_RECORDS = 1000
# Shutdown and revoke: how long the last transactions may take once running work has drained.
_FINAL_FLUSH_TIMEOUT_S = 5.0
# Shutdown: how long each Kafka client may take to close.
_CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Work:
    record: Any  # aiokafka ConsumerRecord
    channel: PartitionChannel


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
        self._channels: dict[TopicPartition, PartitionChannel] = {}
        self._channel_tasks: dict[TopicPartition, asyncio.Task[None]] = {}
        self._opening: dict[TopicPartition, asyncio.Task[None]] = {}
        self._paused: set[TopicPartition] = set()
        self._scheduler: KeyedScheduler[_Work] = KeyedScheduler(
            settings.max_in_flight, self._process
        )
        # A dead letter is the original record plus headers: leave room for both.
        self._max_message_bytes = max(1_048_576, settings.max_record_bytes) + 65_536
        self._renderer = OutcomeRenderer(
            settings.results_topic, settings.dead_letter_topic, self._max_message_bytes
        )
        # ops: metrics and the /healthz, /readyz, /metrics server (consumer/ops_server.py)
        self.metrics = metrics or EngineMetrics(self.registry.names())
        # What the fleet shares (EXECUTION_STATE_URL), else per-process state (consumer/state).
        self.fleet = build_state(settings, settings.group_id, self._log, self.metrics)
        # Per-upstream circuit breakers; `states()` is what metrics and health read.
        self.circuit_breakers = settings.circuit_breakers(self.fleet.circuits)
        self.metrics.watch_gauges(
            lambda: self._scheduler.running, lambda: self.held, lambda: self.state.paused
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
            api_http = await stack.enter_async_context(service_client(10.0))
            egress_http = await stack.enter_async_context(
                guarded_client(
                    EgressPolicy(parse_networks(settings.http_allowed_networks), self._resolver),
                    max_connections=settings.max_in_flight,
                )
            )
            vault_http = await stack.enter_async_context(service_client(settings.vault_timeout_s))
            stack.push_async_callback(self.fleet.aclose)
            fetch, forget = self.fleet.credentials(
                credential_fetch(settings, vault_http), settings.vault_cache_ttl_s
            )
            credentials = CredentialCache(
                fetch, settings.vault_cache_ttl_s, settings.vault_cache_max_entries, forget=forget
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
                limiter=settings.rate_limiter(self.registry, self.fleet.rates),
                breakers=self.circuit_breakers,
                step_aside=self._scheduler.stepped_aside,
                successes=self.fleet.successes,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                idempotency_lease_s=settings.idempotency_lease_s,
            )
            # Log events (and, with exactly-once off, envelopes) go through this producer.
            producer = AIOKafkaProducer(**self._producer_options(), enable_idempotence=True)
            await producer.start()
            stack.push_async_callback(self._bounded, producer.stop, "producer.stop")
            self._producer = producer
            if self._log_sink is not None:
                sink_task = asyncio.create_task(self._log_sink.run(producer, settings.logs_topic))
                stack.push_async_callback(self._stop_log_sink, self._log_sink, sink_task, producer)
            admin = AIOKafkaAdminClient(**kafka)
            await admin.start()
            stack.push_async_callback(self._bounded, admin.close, "admin.close")
            self._admin = admin

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
            self._consumer = consumer  # the listener may run inside start()
            await consumer.start()
            self.state.consumer = consumer  # ops: readiness
            self.metrics.watch_consumer(consumer)  # ops: lag
            try:
                self._log.info(
                    "engine.started",
                    topic=settings.requests_topic,
                    group_id=settings.group_id,
                    actions=self.registry.names(),
                    max_in_flight=settings.max_in_flight,
                    exactly_once=settings.exactly_once,
                )
                await self._intake_loop(stop)
                await self._shutdown()
            finally:
                await self._bounded(consumer.stop, "consumer.stop")
                self._log.info("engine.stopped")

    async def _bounded(self, close: Callable[[], Awaitable[Any]], what: str) -> None:
        """Closing a Kafka client waits for the broker (flush, leave group): with the broker
        gone that could be forever, and a shutdown must end."""
        try:
            await asyncio.wait_for(close(), _CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            # aiokafka's consumer.stop() can raise its own fetch task's cancellation.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            self._log.warning("engine.close_timed_out", client=what, error="CancelledError")
        except Exception as exc:
            self._log.warning("engine.close_timed_out", client=what, error=type(exc).__name__)

    def _producer_options(self) -> dict[str, Any]:
        return {
            **self.settings.kafka_client_options(),
            "acks": "all",
            "linger_ms": 5,
            # aiokafka keeps one open batch per partition and a send() into a full one waits
            # until the sender drained it (a produce round trip, one in flight per broker):
            # with the default 16 KiB, a 1,000-envelope transaction waits ~25 times (measured:
            # 20-39 ms per transaction, 9-10 ms with 512 KiB). 512 KiB holds a transaction's
            # envelopes (or a burst of log events) in one batch and stays under the broker's
            # default message.max.bytes (1 MiB), which bounds a whole batch.
            "max_batch_size": 512 * 1024,
            "request_timeout_ms": 30_000,
            "max_request_size": self._max_message_bytes,
        }

    @property
    def held(self) -> int:
        """Records accepted and not yet published: queued, running, or finished and waiting
        for their partition's next transaction."""
        return self._scheduler.held + sum(c.held for c in self._channels.values())

    async def _intake_loop(self, stop: asyncio.Event) -> None:
        consumer, scheduler, limit = self._consumer, self._scheduler, self.settings.max_buffered
        while not stop.is_set():
            held = self.held
            # Backpressure: a full buffer pauses fetching instead of growing without bound.
            # getmany() keeps being called so the consumer stays in its group.
            if held >= limit:
                self.state.paused = True
            elif self.state.paused and held <= limit // 2:
                self.state.paused = False
            self._apply_pauses()
            batch = await consumer.getmany(
                timeout_ms=_FETCH_TIMEOUT_MS,
                max_records=max(1, min(limit - held, _MAX_FETCH_RECORDS)),
            )
            for tp, records in batch.items():
                channel = self._channels.get(tp)
                if channel is None or channel.closed:
                    # Revoked, fenced or still opening: not ours to run. Fetched records are
                    # not tracked, so they are neither committed nor lost.
                    continue
                offsets = channel.offsets
                self.metrics.consumed(tp.topic, tp.partition, len(records))  # ops
                for record in records:
                    if offsets.add(record.offset):
                        continue  # a previous owner published its envelope already
                    scheduler.submit(tp, record.key or None, _Work(record, channel))

    def _apply_pauses(self) -> None:
        """Pause what must not be fetched: everything while the buffer is full; otherwise the
        partitions still opening and those whose uncommitted span reached its bound."""
        consumer = self._consumer
        assigned = consumer.assignment()
        if self.state.paused:
            wanted = set(assigned)
        else:
            span_limit = self.settings.max_uncommitted_span
            wanted = {
                tp
                for tp in assigned
                if (channel := self._channels.get(tp)) is None
                or channel.closed
                or channel.offsets.span >= span_limit
            }
        if wanted - self._paused:
            consumer.pause(*(wanted - self._paused))
        resume = (self._paused - wanted) & assigned
        if resume:
            consumer.resume(*resume)
        self._paused = wanted

    async def _process(self, work: _Work) -> None:
        """One record -> exactly one envelope (and a dead letter if unreadable) -> its channel."""
        record = work.record
        try:
            outcome = await self._outcome(record)
        except Exception:
            # A bug must not cost the record its envelope, nor stall the partition's watermark.
            self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
            outcome = _Outcome(_bug_envelope(record, "the engine failed on this record (bug)"))
        self.metrics.envelope(outcome.envelope)  # ops
        try:
            messages = self._renderer.render(
                outcome.envelope, traceparent=outcome.traceparent, dead_letter=outcome.dead_letter
            )
        except Exception:
            # Same reasoning: a record whose result cannot be rendered still gets an envelope,
            # or its partition's watermark would never pass it.
            self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
            messages = self._renderer.render(
                _bug_envelope(record, "the engine could not render this record's result (bug)"),
                traceparent=None,
            )
        work.channel.finish(record.offset, messages)

    async def _outcome(self, record: Any) -> _Outcome:
        decoded = decode_record(
            record.value,
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            max_bytes=self.settings.max_record_bytes,
            max_depth=self.settings.max_json_depth,
            max_params_bytes=self.settings.max_params_bytes,
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
        execution = self._runner.execute(
            decoded.request, decoded.request_id, log, deduplicate=not reexecutes(record.headers)
        )
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

    # -- partitions: assignment, revocation, fencing -------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.state.assigned |= assigned
        for tp in assigned:
            if tp not in self._opening and tp not in self._channels:
                self._opening[tp] = asyncio.create_task(self._open(tp))
        self._apply_pauses()  # nothing of theirs is fetched before their channel is open
        self._log.info("partitions.assigned", partitions=_names(assigned))

    async def _open(self, tp: TopicPartition) -> None:
        """Initialise the partition's producer (fencing its previous owner), then read where
        that owner left off and continue from there. Retried until it works or is revoked."""
        delay = 0.2
        try:
            while True:
                sink = self._make_sink(tp)
                try:
                    await sink.open()
                    start = await self._read_committed(tp)
                    break
                except asyncio.CancelledError:  # revoked while opening
                    await sink.close()
                    raise
                except Exception as exc:
                    await sink.close()
                    self._log.warning(
                        "partition.open_failed", partition=tp.partition, error=type(exc).__name__
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if start is not None:
                self._consumer.seek(tp, start.offset)
            channel = PartitionChannel(
                tp,
                PartitionOffsets(start),
                sink,
                renderer=self._renderer,
                read_committed=self._read_committed,
                log=self._log,
                interval_s=self.settings.commit_interval_s,
                max_batch=self.settings.transaction_max_records,
                on_flushed=self.metrics.committed,  # ops: transaction latency
                on_failed=self.metrics.commit_failed,  # ops
            )
            self._channels[tp] = channel
            self._channel_tasks[tp] = asyncio.create_task(channel.run(self._on_fenced))
            if start is not None and start.done_above:
                self._log.info(
                    "partition.resumed",
                    partition=tp.partition,
                    offset=start.offset,
                    done_above=len(start.done_above),
                )
        finally:
            # A cancelled opening may end after a new one for the same partition started.
            if self._opening.get(tp) is asyncio.current_task():
                del self._opening[tp]

    def _make_sink(self, tp: TopicPartition) -> CommitSink:
        settings = self.settings
        if not settings.exactly_once:
            return AtLeastOnceSink(self._producer, self._consumer, self._log)

        def producer() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                **self._producer_options(),
                transactional_id=f"{settings.group_id}-{tp.topic}-{tp.partition}",
                transaction_timeout_ms=settings.transaction_timeout_ms,
            )

        return TransactionalSink(producer, settings.group_id)

    async def _read_committed(self, tp: TopicPartition) -> CommitPoint | None:
        found = await self._admin.list_consumer_group_offsets(
            self.settings.group_id, partitions=[tp]
        )
        committed = found.get(tp)
        if committed is None or committed.offset < 0:
            return None
        return CommitPoint.parse(committed.offset, committed.metadata)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        self._log.info("partitions.revoked", partitions=_names(revoked))
        # Everything below must end well inside the rebalance timeout, or the group goes on
        # without us: half of it for running actions, a quarter for the last transactions.
        rebalance_s = self.settings.rebalance_timeout_ms / 1000
        dropped, abandoned = await self._release(
            revoked,
            min(self.settings.drain_timeout_s, rebalance_s / 2),
            min(_FINAL_FLUSH_TIMEOUT_S, rebalance_s / 4),
        )
        if dropped or abandoned:
            self._log.info("partitions.released", not_started=dropped, abandoned=abandoned)

    async def _release(
        self,
        partitions: set[TopicPartition],
        bound_s: float,
        flush_bound_s: float = _FINAL_FLUSH_TIMEOUT_S,
    ) -> tuple[int, int]:
        """Stop intake for `partitions`, let their running actions finish within `bound_s`,
        publish and commit what finished, close their producers. Returns (not started,
        abandoned): those run again on the next owner."""
        for tp in partitions:
            opening = self._opening.pop(tp, None)
            if opening is not None:
                opening.cancel()
        dropped = self._scheduler.discard_queued(set(partitions))
        abandoned = await self._scheduler.drain(set(partitions), bound_s)
        channels = [c for tp in partitions if (c := self._channels.pop(tp, None)) is not None]
        for channel in channels:
            channel.stop_flushing()  # a flush in progress completes; none starts after it
        if channels:
            await asyncio.wait(
                [asyncio.create_task(self._final_flush(c, flush_bound_s)) for c in channels]
            )
        for channel in channels:
            task = self._channel_tasks.pop(channel.tp, None)
            if task is not None and not task.done():
                task.cancel()
        for tp in partitions:
            self.state.assigned.discard(tp)
            self._paused.discard(tp)
        return dropped, abandoned

    async def _final_flush(self, channel: PartitionChannel, bound_s: float) -> None:
        try:
            if not channel.fenced:
                await asyncio.wait_for(channel.flush(), bound_s)
        except Exception as exc:  # uncommitted records simply run again on the next owner
            self._log.warning(
                "partition.final_flush_failed",
                partition=channel.tp.partition,
                error=type(exc).__name__,
            )
        finally:
            await channel.close()

    def _on_fenced(self, channel: PartitionChannel) -> None:
        """Another engine took the partition over while we thought we had it (we were too slow
        to rejoin the group). Drop its work; the group tells us about the new owner soon."""
        tp = channel.tp
        if self._channels.get(tp) is channel:
            del self._channels[tp]
            self._channel_tasks.pop(tp, None)
            self._scheduler.discard_queued({tp})
            asyncio.get_running_loop().create_task(channel.close())
            self._opening[tp] = asyncio.create_task(self._reopen_if_still_ours(tp))

    async def _reopen_if_still_ours(self, tp: TopicPartition) -> None:
        """Fencing usually means another engine owns the partition, and the group revokes it
        from us within a session timeout. If it is still ours after that (the broker timed our
        own transaction out), take it up again rather than leave it idle."""
        await asyncio.sleep(self.settings.session_timeout_ms / 1000)
        self._opening.pop(tp, None)
        if tp in self._consumer.assignment() and tp not in self._channels:
            self._log.warning("partition.reopening", partition=tp.partition)
            self._opening[tp] = asyncio.create_task(self._open(tp))

    async def _shutdown(self) -> None:
        self._log.info("engine.stopping", in_flight=self._scheduler.running, held=self.held)
        everything = set(self._channels) | set(self._opening)
        dropped, abandoned = await self._release(everything, self.settings.drain_timeout_s)
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


def _bug_envelope(record: Any, message: str) -> ResultEnvelope:
    now = datetime.now(UTC)
    return error_envelope(
        f"{record.topic}:{record.partition}:{record.offset}",
        ErrorCode.INTERNAL_ERROR,
        message,
        started_at=now,
        finished_at=now,
    )


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
