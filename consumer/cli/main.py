"""`execution-engine`: run the engine, send a request, write the schemas."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from consumer.app import Application
from consumer.broker.preflight import KafkaSettingsRefused, check_kafka_settings
from consumer.broker.topics import create_topics, partitions_of
from consumer.cli.replay import ReplayOptions, Selection, format_report, parse_offset_range, replay
from consumer.cli.schemas import SCHEMA_DIR, stale_schemas, write_schemas
from consumer.cli.tail import KINDS, TailFilter, tail
from consumer.localkafka.launcher import LocalKafka, cache_dir
from consumer.ops.logging import KafkaLogSink, configure_logging, get_logger
from consumer.ops.speedups import freeze_startup_objects, warn_if_slow
from consumer.settings import EngineSettings, settings_help
from schemas import ErrorCode

LOCAL_KAFKA_PORT = 9092


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = EngineSettings()
    except ValidationError as exc:
        print(f"execution-engine: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    result: int = args.handler(args, settings)
    return result


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="execution-engine",
        description="PURAIFY Execution Engine: Kafka requests in, actions run, envelopes out.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="consume requests until SIGINT/SIGTERM",
        description="Consume requests until SIGINT/SIGTERM, then drain in-flight work, commit "
        "and exit 0. When KAFKA_BOOTSTRAP_SERVERS is not set and nothing answers on "
        f"localhost:{LOCAL_KAFKA_PORT}, a local single-node Kafka is started (--local-kafka).",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    run.add_argument(
        "--local-kafka",
        choices=("auto", "never"),
        default="auto",
        help="auto: start a local broker when none is configured or reachable (default)",
    )
    run.set_defaults(handler=_run)

    send = commands.add_parser(
        "send",
        help="publish one request (and with --wait, print its envelope)",
        description="Publish one execution request. Exit status with --wait: 0 success "
        "envelope, 1 error envelope, 3 no envelope within --timeout.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    send.add_argument("action")
    send.add_argument("--project", required=True)
    send.add_argument("--params", default="{}", help="JSON object (default {})")
    send.add_argument("--metadata", default=None, help="JSON object echoed in the envelope")
    send.add_argument("--request-id", default=None, help="default: a new UUID")
    send.add_argument("--key", default=None, help="Kafka key (ordering); default: none")
    send.add_argument("--wait", action="store_true", help="print the envelope")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    send.set_defaults(handler=_send)

    _add_replay(commands, formatter)
    _add_topics(commands, formatter)
    _add_tail(commands, formatter)

    export = commands.add_parser(
        "schemas",
        help="write the JSON Schemas and the AsyncAPI document into schemas/json",
        description="Write the JSON Schemas generated from the models (request, envelope, log "
        "event, each action's params) and the AsyncAPI 3.0 document of the four topics "
        "(asyncapi.json).",
    )
    export.add_argument("--out", type=Path, default=SCHEMA_DIR)
    export.add_argument("--check", action="store_true", help="exit 1 if the files are stale")
    export.set_defaults(handler=_schemas)
    return parser


def _add_replay(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    replay_cmd = commands.add_parser(
        "replay",
        help="re-execute a range of the requests topic (beside the live group)",
        description="Re-execute a range of the requests topic without disturbing the live "
        "group: the selected records are published again to the requests topic (same key, "
        "value and request_id, plus a `replay-of` header) and the running engines execute "
        "them. Requests whose latest envelope is a success are skipped unless "
        "--include-succeeded; records that would be rejected again are never republished. "
        "Progress goes to stderr, a summary table to stdout.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    replay_cmd.add_argument(
        "--from", dest="since", type=_moment, help="records at or after this time (ISO 8601)"
    )
    replay_cmd.add_argument(
        "--to", dest="until", type=_moment, help="records at or before this time (ISO 8601)"
    )
    replay_cmd.add_argument(
        "--offsets",
        action="append",
        type=_offset_range,
        default=[],
        metavar="P:START[-END]",
        help="an offset range of partition P, END included (repeatable)",
    )
    replay_cmd.add_argument(
        "--all", action="store_true", help="the whole topic (when no --from/--to/--offsets)"
    )
    replay_cmd.add_argument(
        "--only-failed",
        action="store_true",
        help="only requests whose latest envelope is an error",
    )
    replay_cmd.add_argument(
        "--codes", type=_codes, default=frozenset(), help="comma-separated error codes to keep"
    )
    replay_cmd.add_argument(
        "--include-succeeded",
        action="store_true",
        help="also replay requests whose latest envelope is a success (re-runs side effects)",
    )
    replay_cmd.add_argument(
        "--dry-run", action="store_true", help="validate and report; publish nothing"
    )
    replay_cmd.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the replayed requests' envelopes and report their outcomes",
    )
    replay_cmd.set_defaults(handler=_replay)


def _add_topics(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    topics = commands.add_parser(
        "topics",
        help="manage the engine's topics",
        description="Manage the engine's four topics.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    actions = topics.add_subparsers(dest="topics_command", required=True)
    create = actions.add_parser(
        "create",
        help="create the four topics when missing (idempotent)",
        description="Create the requests, results, logs and dead-letter topics when missing. "
        "Existing topics are left as they are (and reported), so this is safe to re-run.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    create.add_argument(
        "--partitions", type=int, default=None, help="default: EXECUTION_TOPIC_PARTITIONS"
    )
    create.add_argument(
        "--replication", type=int, default=None, help="default: EXECUTION_TOPIC_REPLICATION"
    )
    create.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic config for created topics, e.g. retention.ms=604800000 (repeatable)",
    )
    create.set_defaults(handler=_topics_create)


def _topics_create(args: argparse.Namespace, settings: EngineSettings) -> int:
    configs = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"execution-engine topics create: {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        configs[key] = value
    partitions = args.partitions or settings.topic_partitions
    replication = args.replication or settings.topic_replication
    statuses = asyncio.run(create_topics(settings, partitions, replication, configs))
    width = max(len(status.name) for status in statuses)
    print(f"{'topic':<{width}}  state    partitions  replication")
    for status in statuses:
        state = "created" if status.created else "exists"
        print(
            f"{status.name:<{width}}  {state:<7}  {status.partitions:>10}  {status.replication:>11}"
        )
    return 0


def _add_tail(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    tail_cmd = commands.add_parser(
        "tail",
        help="print results, log events or dead letters, filtered",
        description="Print the last records of the results, logs or dead-letter topic, one "
        "line each (or --json), oldest first; --follow keeps printing new ones. Reads without "
        "a consumer group: it never disturbs the engines.",
        epilog=settings_help(),
        formatter_class=formatter,
    )
    tail_cmd.add_argument("topic", choices=KINDS)
    tail_cmd.add_argument("--request-id", default=None)
    tail_cmd.add_argument(
        "--status", default=None, help="success or error, an error code, or a log level"
    )
    tail_cmd.add_argument("--project", default=None)
    tail_cmd.add_argument("--action", default=None)
    tail_cmd.add_argument(
        "-n", "--lines", type=int, default=10, help="how many to print first (0: all)"
    )
    tail_cmd.add_argument("--from", dest="since", type=_moment, help="start at this time")
    tail_cmd.add_argument("-f", "--follow", action="store_true", help="keep printing new ones")
    tail_cmd.add_argument("--json", action="store_true", help="print the records as JSON")
    tail_cmd.set_defaults(handler=_tail)


def _tail(args: argparse.Namespace, settings: EngineSettings) -> int:
    wanted = TailFilter(args.request_id, args.status, args.project, args.action)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await tail(
            settings,
            args.topic,
            wanted,
            sys.stdout,
            lines=max(0, args.lines),
            since=args.since,
            follow=args.follow,
            as_json=args.json,
            stop=stop,
        )

    try:
        asyncio.run(run())
    except LookupError as exc:
        print(f"execution-engine tail: {exc}", file=sys.stderr)
        return 2
    return 0


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _offset_range(text: str) -> Any:
    try:
        return parse_offset_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _codes(text: str) -> frozenset[str]:
    codes = frozenset(code.strip() for code in text.split(",") if code.strip())
    unknown = codes - {code.value for code in ErrorCode}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown error code(s): {', '.join(sorted(unknown))}")
    return codes


def _replay(args: argparse.Namespace, settings: EngineSettings) -> int:
    if not (args.since or args.until or args.offsets or args.all):
        print(
            "execution-engine replay: choose a range: --from/--to, --offsets, or --all",
            file=sys.stderr,
        )
        return 2
    options = ReplayOptions(
        selection=Selection(
            only_failed=args.only_failed,
            codes=args.codes,
            include_succeeded=args.include_succeeded,
        ),
        ranges=tuple(args.offsets),
        since=args.since,
        until=args.until,
        dry_run=args.dry_run,
        wait_s=args.wait,
    )
    try:
        report = asyncio.run(replay(settings, options))
    except (LookupError, ValueError) as exc:
        print(f"execution-engine replay: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


def _run(args: argparse.Namespace, settings: EngineSettings) -> int:
    sink = KafkaLogSink()
    configure_logging(settings.log_level, sink=sink)
    warn_if_slow(get_logger())
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


def _send(args: argparse.Namespace, settings: EngineSettings) -> int:
    try:
        params = json.loads(args.params)
        metadata = json.loads(args.metadata) if args.metadata else None
    except ValueError as exc:
        print(f"execution-engine send: --params/--metadata is not JSON: {exc}", file=sys.stderr)
        return 2
    request: dict[str, Any] = {
        "request_id": args.request_id or str(uuid.uuid4()),
        "action": args.action,
        "project": args.project,
        "params": params,
    }
    if metadata is not None:
        request["metadata"] = metadata
    envelope = asyncio.run(_send_request(settings, request, args.key, args.wait, args.timeout))
    if not args.wait:
        print(json.dumps({"request_id": request["request_id"], "sent": True}))
        return 0
    if envelope is None:
        print(
            f"execution-engine send: no envelope for {request['request_id']} within "
            f"{args.timeout:g} s (is `execution-engine run` running?)",
            file=sys.stderr,
        )
        return 3
    print(json.dumps(envelope, indent=2))
    return 0 if envelope.get("status") == "success" else 1


async def _send_request(
    settings: EngineSettings, request: dict[str, Any], key: str | None, wait: bool, wait_s: float
) -> dict[str, Any] | None:
    kafka = settings.kafka_client_options()
    results = None
    if wait:
        # Position at the end of the results topic *before* sending, so the envelope cannot
        # be missed however fast the engine is.
        results = AIOKafkaConsumer(
            **kafka, isolation_level="read_committed", enable_auto_commit=False
        )
        await results.start()
        try:
            partitions = await partitions_of(results, settings.results_topic)
        except LookupError as exc:
            await results.stop()
            raise SystemExit(f"execution-engine send: {exc}") from None
        results.assign(partitions)
        await results.seek_to_end(*partitions)
        for tp in partitions:
            await results.position(tp)
    producer = AIOKafkaProducer(**kafka, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.requests_topic,
            json.dumps(request).encode(),
            key=key.encode() if key else None,
        )
    finally:
        await producer.stop()
    if results is None:
        return None
    try:
        return await asyncio.wait_for(_find_envelope(results, request["request_id"]), wait_s)
    except TimeoutError:
        return None
    finally:
        await results.stop()


async def _find_envelope(consumer: AIOKafkaConsumer, request_id: str) -> dict[str, Any]:
    wanted = request_id.encode()
    while True:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                if record.key == wanted:
                    envelope: dict[str, Any] = json.loads(record.value)
                    return envelope


def _schemas(args: argparse.Namespace, settings: EngineSettings) -> int:
    if args.check:
        stale = stale_schemas(args.out)
        for name in stale:
            print(f"stale: {name} (run `execution-engine schemas`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
