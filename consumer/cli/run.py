"""`execution-engine run`: the engine until SIGINT/SIGTERM (and a local broker when none is)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from actions.registry import default_registry
from consumer.app import Application
from consumer.broker.connections import OpenFilesLimitTooLow, raise_open_files_limit
from consumer.broker.preflight import KafkaSettingsRefused, check_kafka_settings
from consumer.cli.command import LOCAL_KAFKA_PORT
from consumer.localkafka import LocalKafka, cache_dir
from consumer.localkafka.ownership import stop_orphan
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging, get_logger
from consumer.ops.speedups import freeze_startup_objects, warn_if_slow
from consumer.settings import EngineSettings


def command(args: argparse.Namespace, settings: EngineSettings) -> int:
    registry = default_registry()
    try:  # what the actions declare, checked before anything starts
        registry.read_settings()
        registry.read_rates()
    except ValueError as exc:
        print(f"execution-engine run: invalid settings: {exc}", file=sys.stderr)
        return 2
    sink = KafkaLogSink()
    configure_logging(settings.log_level, sink=sink)
    warn_if_slow(get_logger())
    soft, hard = raise_open_files_limit()
    get_logger().debug("engine.open_files_limit", soft=soft, hard=hard)
    with _broker_for_run(settings, args.local_kafka, fresh=args.fresh) as bootstrap:
        if bootstrap != settings.bootstrap_servers:
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
        try:
            freeze_startup_objects()
            asyncio.run(_run_engine(settings, sink))
        except KafkaSettingsRefused as exc:
            # A definitive refusal (credentials, TLS trust) is a settings error: exit 2 at once.
            get_logger().error("engine.kafka_refused", reason=str(exc))
            print(f"execution-engine run: {exc}", file=sys.stderr)
            return 2
        except OpenFilesLimitTooLow as exc:
            get_logger().error("engine.open_files_limit_too_low", reason=str(exc))
            print(f"execution-engine run: {exc}", file=sys.stderr)
            return 2
    return 0


async def _run_engine(settings: EngineSettings, sink: KafkaLogSink) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too (a closed terminal): drained and stopped, the local broker with it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    await check_kafka_settings(settings)
    await Application(settings, log_sink=sink).run(stop)


@contextlib.contextmanager
def _broker_for_run(settings: EngineSettings, mode: str, *, fresh: bool) -> Iterator[str]:
    if mode == "never" or "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        yield settings.bootstrap_servers
        return
    broker = LocalKafka(port=LOCAL_KAFKA_PORT, data_dir=local_data_dir())
    # One left running by an engine that is gone is stopped; one whose engine runs is shared.
    other = stop_orphan(broker.data_dir, broker.config_path, _say)
    if other is not None:
        if fresh:
            _say(f"--fresh: the local data is in use by the {other.describe()}; stop it first")
            raise SystemExit(2)
        _say(f"using the local {other.describe()} (it stops when that engine does)")
        yield broker.bootstrap_servers
        return
    if _answers(LOCAL_KAFKA_PORT):
        _say(
            f"using the broker answering on localhost:{LOCAL_KAFKA_PORT}, not started by an "
            "engine (set KAFKA_BOOTSTRAP_SERVERS to choose one)"
        )
        yield settings.bootstrap_servers
        return
    if fresh:
        shutil.rmtree(broker.data_dir, ignore_errors=True)
        broker = LocalKafka(port=LOCAL_KAFKA_PORT, data_dir=local_data_dir())
    _say(
        f"no broker configured or answering; starting a local Kafka on 127.0.0.1:"
        f"{LOCAL_KAFKA_PORT}, data in {broker.data_dir} "
        + ("(fresh)" if fresh else "(kept across runs; `--fresh` starts with none)")
    )
    with broker:
        yield broker.bootstrap_servers


def local_data_dir() -> Path:
    return cache_dir() / "local-run"


def _say(message: str) -> None:
    print(f"execution-engine: {message}", file=sys.stderr, flush=True)


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
