"""Every command's arguments and --help, and what they share. Light on purpose: building the
parser imports neither the engine nor the Kafka client, so `--help` answers at once. Each
command names its handler (`module:function`) and the settings class it reads (only those:
a bad variable it does not use cannot stop it); `main` imports them when the command runs."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from consumer.cli.catalog import actions_help, settings_help

FORMATTER = argparse.RawDescriptionHelpFormatter
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
TailKind = Literal["results", "logs", "dead-letter"]
KINDS: tuple[TailKind, ...] = ("results", "logs", "dead-letter")
LOCAL_KAFKA_PORT = 9092


def add_command(
    commands: Commands,
    name: str,
    handler: str,
    settings: str | None,
    **parser_options: Any,
) -> argparse.ArgumentParser:
    """A subcommand whose --help lists the settings it reads (a `catalog.SETTINGS` name), and
    that `main` hands them; `handler` is `module:function`."""
    if settings is not None:
        parser_options.setdefault("epilog", settings_help(settings))
        parser_options.setdefault("formatter_class", FORMATTER)
    parser = commands.add_parser(name, **parser_options)
    parser.set_defaults(handler=handler, settings=settings)
    return parser


def moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_commands(commands: Commands) -> None:
    for add in (_run, _send, _replay, _topics, _tail, _schemas):
        add(commands)


def _run(commands: Commands) -> None:
    parser = add_command(
        commands,
        "run",
        "consumer.cli.run:command",
        "EngineSettings",
        help="consume requests until SIGINT/SIGTERM/SIGHUP",
        description="Consume requests until SIGINT, SIGTERM or SIGHUP, then drain in-flight "
        "work, commit and exit 0. When KAFKA_BOOTSTRAP_SERVERS is not set and nothing answers "
        f"on localhost:{LOCAL_KAFKA_PORT}, a local single-node Kafka is started "
        "(--local-kafka); it stops with the engine, and keeps its data across runs.",
    )
    parser.add_argument(
        "--local-kafka",
        choices=("auto", "never"),
        default="auto",
        help="auto: start a local broker when none is configured or reachable (default)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start the local broker with no data (its data directory is emptied first)",
    )


def _send(commands: Commands) -> None:
    parser = add_command(
        commands,
        "send",
        "consumer.cli.send:command",
        "KafkaClientSettings",
        help="publish one request (and with --wait, print its envelope)",
        description="Publish one execution request. Exit status with --wait: 0 success "
        "envelope, 1 error envelope, 3 no envelope within --timeout.",
    )
    parser.epilog = f"{actions_help()}\n\n{parser.epilog}"
    parser.add_argument("action", help="the action to run (listed below)")
    parser.add_argument("--project", required=True)
    parser.add_argument("--params", default="{}", help="JSON object (default {})")
    parser.add_argument("--metadata", default=None, help="JSON object echoed in the envelope")
    parser.add_argument("--request-id", default=None, help="default: a new UUID")
    parser.add_argument("--key", default=None, help="Kafka key (ordering); default: none")
    parser.add_argument("--wait", action="store_true", help="print the envelope")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def _replay(commands: Commands) -> None:
    parser = add_command(
        commands,
        "replay",
        "consumer.cli.replay.command:command",
        "IntakeSettings",
        help="re-execute a range of the requests topic (beside the live group)",
        description="Re-execute a range of the requests topic without disturbing the live "
        "group: the selected records are published again to the requests topic (same key, "
        "value and request_id, plus a `replay-of` header) and the running engines execute "
        "them. Requests whose latest envelope is a success are skipped unless "
        "--include-succeeded; records that would be rejected again are never republished. "
        "Progress goes to stderr, a summary table to stdout (with --dry-run, the request ids "
        "it would replay).",
    )
    parser.add_argument(
        "--from", dest="since", type=moment, help="records at or after this time (ISO 8601)"
    )
    parser.add_argument(
        "--to", dest="until", type=moment, help="records at or before this time (ISO 8601)"
    )
    parser.add_argument(
        "--offsets",
        action="append",
        type=_offset_range,
        default=[],
        metavar="P:START[-END]",
        help="an offset range of partition P, END included (repeatable)",
    )
    parser.add_argument(
        "--all", action="store_true", help="the whole topic (when no --from/--to/--offsets)"
    )
    parser.add_argument(
        "--only-failed",
        action="store_true",
        help="only requests whose latest envelope is an error",
    )
    parser.add_argument(
        "--codes", type=_codes, default=frozenset(), help="comma-separated error codes to keep"
    )
    parser.add_argument(
        "--include-succeeded",
        action="store_true",
        help="also replay requests whose latest envelope is a success (re-runs side effects)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="validate and report; publish nothing"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for the replayed requests' envelopes and report their outcomes",
    )


def _topics(commands: Commands) -> None:
    topics = commands.add_parser(
        "topics",
        help="manage the engine's topics",
        description="Manage the engine's four topics.",
        epilog=settings_help("IntakeSettings"),
        formatter_class=FORMATTER,
    )
    actions = topics.add_subparsers(dest="topics_command", required=True)
    create = add_command(
        actions,
        "create",
        "consumer.cli.topics:command",
        "IntakeSettings",
        help="create the four topics when missing (idempotent)",
        description="Create the requests, results, logs and dead-letter topics when missing "
        "(the dead-letter one with room for EXECUTION_MAX_RECORD_BYTES plus headers). "
        "Existing topics are left as they are (and reported), so this is safe to re-run.",
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


def _tail(commands: Commands) -> None:
    parser = add_command(
        commands,
        "tail",
        "consumer.cli.tail:command",
        "KafkaClientSettings",
        help="print results, log events or dead letters, filtered",
        description="Print the newest records of the results, logs or dead-letter topic, one "
        "line each (or --json), oldest first, read backwards from each partition's end (never "
        "the whole topic); --follow keeps printing new ones. Reads without a consumer group: "
        "it never disturbs the engines.",
    )
    parser.add_argument("topic", choices=KINDS)
    parser.add_argument("--request-id", default=None)
    parser.add_argument(
        "--status", default=None, help="success or error, an error code, or a log level"
    )
    parser.add_argument("--project", default=None)
    parser.add_argument("--action", default=None)
    parser.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=10,
        metavar="N",
        help="print the N newest first (default 10; 0: none, `all`: every one)",
    )
    parser.add_argument("--from", dest="since", type=moment, help="start at this time")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new ones")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")


def _schemas(commands: Commands) -> None:
    # Reads no settings: it writes what the code defines, whatever the environment holds.
    parser = add_command(
        commands,
        "schemas",
        "consumer.cli.schemas:command",
        None,
        help="write the JSON Schemas and the AsyncAPI document into schemas/json",
        description="Write the JSON Schemas generated from the models (request, envelope, log "
        "event, each action's params) and the AsyncAPI 3.0 document of the four topics "
        "(asyncapi.json).",
    )
    parser.add_argument("--out", default=None, help="default: schemas/json in the package")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale")


def _count(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (0, 1, 2, ... or all)")
    return int(text)


def _offset_range(text: str) -> Any:
    from consumer.cli.replay.ranges import parse_offset_range  # noqa: PLC0415 - when used

    try:
        return parse_offset_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _codes(text: str) -> frozenset[str]:
    from schemas.errors import ErrorCode  # noqa: PLC0415 - when used

    codes = frozenset(code.strip() for code in text.split(",") if code.strip())
    unknown = codes - {code.value for code in ErrorCode}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown error code(s): {', '.join(sorted(unknown))}")
    return codes
