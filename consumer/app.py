"""The composition root: every part the engine drives, built from settings, started in order
and closed in reverse.

`Application.run` brings up the ops server, the topics, the HTTP clients, the credential cache,
the action runner, the log producer, the admin client and the group consumer; wires the record
path (intake -> scheduler -> processor -> partitions); then hands the loop to `Engine.run`.
Tests and the `run` command hold an `Application`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from actions.egress import (
    EgressPolicy,
    Resolver,
    guarded_client,
    parse_networks,
    service_client,
    system_resolver,
)
from actions.http import Proxies
from actions.ratelimit import RateLimiter
from actions.registry import ActionRegistry, default_registry
from actions.runtime.idempotency import IdempotencyRecords
from actions.runtime.runner import ActionRunner
from consumer.broker.connections import check_open_files_for, cluster_brokers
from consumer.broker.dead_letter_size import BATCH_BYTES, HEADER_ROOM, topic_bytes_for
from consumer.broker.dead_letter_topic import fit_record_limit
from consumer.broker.partitioner import FastPartitioner
from consumer.broker.topics import ensure_topics
from consumer.credentials.backends import credential_fetch
from consumer.credentials.cache import CredentialCache
from consumer.engine import Engine
from consumer.ops.broker_events import BROKERS
from consumer.ops.health import Readiness, engine_readiness
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import flush_logs, get_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.server import OpsServer, serve_ops
from consumer.ops.tracing import NoTracing, build_tracing
from consumer.partitions.assignment import (
    ChannelOptions,
    CommittedOffsets,
    Partitions,
    RebalanceListener,
)
from consumer.partitions.blocks import Block, block_assignor, transactional_id
from consumer.partitions.sinks import AtLeastOnceSink, CommitSink, TransactionalSink
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer
from consumer.pipeline.scheduler import KeyedScheduler
from consumer.settings import EngineSettings
from consumer.state import build_state

# Shutdown: how long each Kafka client may take to close.
_CLOSE_TIMEOUT_S = 5.0


class Application:
    def __init__(
        self,
        settings: EngineSettings,
        *,
        registry: ActionRegistry | None = None,
        resolver: Resolver = system_resolver,
        log_sink: KafkaLogSink | None = None,
        metrics: EngineMetrics | None = None,
        tracing: NoTracing | None = None,
        action_settings: Mapping[str, Any] | None = None,
    ) -> None:
        """`action_settings`: values of the actions' own settings by field name (e.g.
        `slack_api_url`), in place of their environment variables."""
        self.settings = settings
        self._action_settings = dict(action_settings or {})
        self.registry = registry or default_registry()
        self._resolver = resolver
        self._log_sink = log_sink
        self._log = get_logger()
        self.metrics = metrics or EngineMetrics(self.registry.names())
        # ops: OpenTelemetry, off by default
        self.tracing = tracing or build_tracing(settings.otlp_endpoint)
        # What the fleet shares (EXECUTION_STATE_URL), else per-process state (consumer/state).
        self.fleet = build_state(settings, settings.group_id, self._log, self.metrics)
        # Per-upstream circuit breakers, shared by every request of this process (and, with a
        # store, by the fleet).
        self.circuit_breakers = settings.circuit_breakers(self.fleet.circuits)
        self.metrics.watch_health(  # ops: readiness and circuits, read at scrape time
            lambda: self.readiness().ready, self.circuit_breakers.states
        )
        # A dead letter is the original record plus headers: leave room for both.
        self.max_message_bytes = max(1_048_576, settings.max_record_bytes) + HEADER_ROOM
        self.scheduler: KeyedScheduler[Work] | None = None
        self.credentials: CredentialCache | None = None  # built with the runner
        self.partitions: Partitions | None = None
        self.consumer: AIOKafkaConsumer | None = None  # the group consumer, once started
        self.ops: OpsServer | None = None

    @property
    def assigned(self) -> set[TopicPartition]:
        return set() if self.partitions is None else set(self.partitions.assigned)

    @property
    def paused(self) -> bool:
        """Fetching paused because the buffer is full (backpressure)."""
        return self.partitions is not None and self.partitions.buffer_full

    def readiness(self) -> Readiness:
        """In the group, and every assigned partition open or opening (what /readyz says)."""
        partitions = self.partitions
        return engine_readiness(
            self.consumer, (lambda: None) if partitions is None else partitions.not_open
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then drain, commit and close. Returns normally on shutdown."""
        settings, log = self.settings, self._log
        kafka = settings.kafka_client_options()
        async with contextlib.AsyncExitStack() as stack:
            self.ops = await stack.enter_async_context(
                serve_ops(settings, self.metrics, self.readiness)
            )
            stack.callback(self.tracing.shutdown)
            if settings.create_topics:
                await ensure_topics(settings, settings.max_record_bytes)
            # A dead-letter topic too small for the record limit lowers the limit (logged).
            record_limit, dead_letter_bytes = await fit_record_limit(
                settings, settings.max_record_bytes, log
            )
            settings = self.settings = settings.model_copy(
                update={"max_record_bytes": record_limit}
            )
            runner, credentials = await self._runner(stack)
            # Log events (and, with exactly-once off, envelopes) go through this producer.
            producer = AIOKafkaProducer(**self._producer_options(), enable_idempotence=True)
            await producer.start()
            stack.push_async_callback(self._bounded, producer.stop, "producer.stop")
            if self._log_sink is not None:
                self.metrics.watch_log_sink(self._log_sink)  # ops
                sink_task = asyncio.create_task(self._log_sink.run(producer, settings.logs_topic))
                stack.push_async_callback(self._stop_log_sink, self._log_sink, sink_task, producer)
            admin = AIOKafkaAdminClient(**kafka)
            await admin.start()
            stack.push_async_callback(self._bounded, admin.close, "admin.close")
            brokers = await cluster_brokers(admin)
            BROKERS.know(brokers)  # ops: outages are named and probed by broker
            stack.callback(BROKERS.close)
            # Every connection is a file descriptor: refuse to start into a limit too low.
            await check_open_files_for(
                admin,
                settings.requests_topic,
                brokers=len(brokers),
                blocks=settings.partition_blocks,
                http_connections=2 * settings.max_in_flight,
            )

            renderer = OutcomeRenderer(
                settings.results_topic,
                settings.dead_letter_topic,
                self.max_message_bytes,
                dead_letter_bytes or topic_bytes_for(settings.max_record_bytes),
            )
            processor = RecordProcessor(
                runner,
                renderer,
                IntakeLimits.from_settings(settings),
                metrics=self.metrics,
                tracing=self.tracing,
                credentials=credentials,
            )
            scheduler = self.scheduler = KeyedScheduler(
                settings.max_in_flight,
                processor.run,
                max_per_project=settings.project_in_flight_limit,
            )
            consumer = self.consumer = AIOKafkaConsumer(
                **kafka,
                group_id=settings.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                session_timeout_ms=settings.session_timeout_ms,
                rebalance_timeout_ms=settings.rebalance_timeout_ms,
                max_poll_interval_ms=max(300_000, settings.rebalance_timeout_ms),
                # Whole blocks of partitions, one transactional id each (partitions.blocks).
                partition_assignment_strategy=(block_assignor(settings.partition_blocks),),
                group_instance_id=settings.instance_id or None,
            )
            partitions = self.partitions = Partitions(
                consumer,
                CommittedOffsets(admin, settings.group_id),
                self._sink_factory(producer, consumer),
                scheduler=scheduler,
                renderer=renderer,
                options=ChannelOptions(
                    interval_s=settings.commit_interval_s,
                    max_batch=settings.transaction_max_records,
                    max_uncommitted_span=settings.max_uncommitted_span,
                    session_timeout_s=settings.session_timeout_ms / 1000,
                    blocks=settings.partition_blocks,
                    on_flushed=self.metrics.committed,  # ops: transaction latency
                    on_failed=self.metrics.commit_failed,  # ops
                    on_open_failed=self.metrics.partition_open_failed,  # ops
                ),
                log=log,
            )
            engine = Engine(
                consumer,
                partitions,
                scheduler,
                processor,
                max_buffered=settings.max_buffered,
                drain_timeout_s=settings.drain_timeout_s,
                metrics=self.metrics,
                log=log,
            )
            self.metrics.watch_gauges(  # ops
                lambda: scheduler.running, lambda: engine.held, lambda: partitions.buffer_full
            )
            self.metrics.watch_fair_share(  # ops
                scheduler.projects_at_limit, scheduler.longest_wait_s
            )
            listener = RebalanceListener(
                partitions,
                drain_timeout_s=settings.drain_timeout_s,
                rebalance_timeout_s=settings.rebalance_timeout_ms / 1000,
                log=log,
            )
            consumer.subscribe([settings.requests_topic], listener=listener)
            await consumer.start()
            self.metrics.watch_consumer(consumer)  # ops: lag
            try:
                log.info(
                    "engine.started",
                    topic=settings.requests_topic,
                    group_id=settings.group_id,
                    actions=self.registry.names(),
                    max_in_flight=settings.max_in_flight,
                    max_in_flight_per_project=settings.project_in_flight_limit,
                    exactly_once=settings.exactly_once,
                )
                await engine.run(stop)
            finally:
                await self._bounded(consumer.stop, "consumer.stop")
                log.info("engine.stopped")

    async def _runner(
        self, stack: contextlib.AsyncExitStack
    ) -> tuple[ActionRunner, CredentialCache]:
        """The HTTP clients, the credential cache and the action runner that uses them."""
        settings = self.settings
        in_flight = settings.max_in_flight
        # CONTRACT "Egress proxy": HTTPS_PROXY / HTTP_PROXY / NO_PROXY, for every client.
        proxies = Proxies.from_environ(os.environ)
        api_http = await stack.enter_async_context(
            service_client(10.0, max_in_flight=in_flight, proxies=proxies)
        )
        # Pooled per (project, origin) (`HttpClient.for_project`): each may hold as many
        # connections as actions run at once, all of them together twice that.
        egress_http = await stack.enter_async_context(
            guarded_client(
                EgressPolicy(parse_networks(settings.http_allowed_networks), self._resolver),
                max_connections=2 * in_flight,
                max_connections_per_origin=in_flight,
                proxies=proxies,
            )
        )
        vault_http = await stack.enter_async_context(
            service_client(settings.vault_timeout_s, max_in_flight=in_flight, proxies=proxies)
        )
        stack.push_async_callback(self.fleet.aclose)
        fetch, forget = self.fleet.credentials(
            credential_fetch(settings, vault_http), settings.vault_cache_ttl_s
        )
        credentials = CredentialCache(
            fetch, settings.vault_cache_ttl_s, settings.vault_cache_max_entries, forget=forget
        )
        self.metrics.watch_credentials(credentials)  # ops
        self.credentials = credentials
        runner = ActionRunner(
            registry=self.registry,
            credentials=credentials,
            http=api_http,
            egress_http=egress_http,
            settings=self.registry.read_settings(self._action_settings),
            retry=settings.retry_policy(),
            attempt_timeout_s=settings.action_timeout_s,
            limiter=RateLimiter(self.registry.read_rates(), store=self.fleet.rates),
            breakers=self.circuit_breakers,
            idempotency=IdempotencyRecords(
                self.fleet.successes, settings.idempotency_ttl_s, settings.idempotency_lease_s
            ),
        )
        return runner, credentials

    def _sink_factory(
        self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer
    ) -> Callable[[Block], CommitSink]:
        settings = self.settings

        def make_sink(block: Block) -> CommitSink:
            if not settings.exactly_once:
                return AtLeastOnceSink(producer, consumer, self._log)
            name = transactional_id(settings.group_id, block, settings.partition_blocks)
            return TransactionalSink(
                lambda: AIOKafkaProducer(
                    **self._producer_options(),
                    transactional_id=name,
                    transaction_timeout_ms=settings.transaction_timeout_ms,
                ),
                settings.group_id,
                name,
            )

        return make_sink

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
            "max_batch_size": BATCH_BYTES,
            "request_timeout_ms": 30_000,
            "max_request_size": self.max_message_bytes,
            "partitioner": FastPartitioner(),  # aiokafka's murmur2 costs ~10 us per envelope
        }

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

    async def _stop_log_sink(
        self, sink: KafkaLogSink, task: asyncio.Task[None], producer: AIOKafkaProducer
    ) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush_logs()  # the lines still waiting for their loop iteration go to the sink too
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sink.flush(producer, self.settings.logs_topic), 5)
