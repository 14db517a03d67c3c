"""`execution-engine run`: the engine until SIGINT/SIGTERM (and a local broker when none is)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator

from consumer.app import Application
from consumer.broker.connections import OpenFilesLimitTooLow, raise_open_files_limit
from consumer.broker.preflight import KafkaSettingsRefused, check_kafka_settings
from consumer.cli.command import Commands, add_command
from consumer.localkafka import LocalKafka, cache_dir
from consumer.ops.logging import KafkaLogSink, configure_logging, get_logger
from consumer.ops.speedups import freeze_startup_objects, warn_if_slow
from consumer.settings import EngineSettings

LOCAL_KAFKA_PORT = 9092


def add_run(commands: Commands) -> None:
    parser = add_command(
        commands,
        "run",
        _run,
        EngineSettings,
        help="consume requests until SIGINT/SIGTERM",
        description="Consume requests until SIGINT/SIGTERM, then drain in-flight work, commit "
        "and exit 0. When KAFKA_BOOTSTRAP_SERVERS is not set and nothing answers on "
        f"localhost:{LOCAL_KAFKA_PORT}, a local single-node Kafka is started (--local-kafka).",
    )
    parser.add_argument(
        "--local-kafka",
        choices=("auto", "never"),
        default="auto",
        help="auto: start a local broker when none is configured or reachable (default)",
    )


def _run(args: argparse.Namespace, settings: EngineSettings) -> int:
    sink = KafkaLogSink()
    configure_logging(settings.log_level, sink=sink)
    warn_if_slow(get_logger())
    soft, hard = raise_open_files_limit()
    get_logger().debug("engine.open_files_limit", soft=soft, hard=hard)
    with _broker_for_run(settings, args.local_kafka) as bootstrap:
        if bootstrap != settings.bootstrap_servers:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
        try:
            freeze_startup_objects()
            asyncio.run(_run_engine(settings, sink))
        except KafkaSettingsRefused as exc:
            # A definitive refusal (credentials, TLS trust) is a settings error: exit 2 at once.
            get_logger().error("engine.kafka_refused", reason=str(exc))
            print(f"execution-engine: {exc}", file=sys.stderr)
            return 2
        except OpenFilesLimitTooLow as exc:
            get_logger().error("engine.open_files_limit_too_low", reason=str(exc))
            print(f"execution-engine: {exc}", file=sys.stderr)
            return 2
    return 0


async def _run_engine(settings: EngineSettings, sink: KafkaLogSink) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await check_kafka_settings(settings)
    await Application(settings, log_sink=sink).run(stop)


@contextlib.contextmanager
def _broker_for_run(settings: EngineSettings, mode: str) -> Iterator[str]:
    if mode == "never" or "KAFKA_BOOTSTRAP_SERVERS" in os.environ or _answers(LOCAL_KAFKA_PORT):
        yield settings.bootstrap_servers
        return
    data_dir = cache_dir() / "local-run"
    print(
        f"execution-engine: no broker configured or answering; starting a local Kafka on "
        f"127.0.0.1:{LOCAL_KAFKA_PORT} (data in {data_dir})",
        file=sys.stderr,
    )
    with LocalKafka(port=LOCAL_KAFKA_PORT, data_dir=data_dir) as broker:
        yield broker.bootstrap_servers


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
