"""`execution-engine topics create`: the engine's four topics, when missing (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from consumer.broker.topics import create_topics
from consumer.cli.command import FORMATTER, Commands, add_command
from consumer.settings import IntakeSettings, settings_help


def add_topics(commands: Commands) -> None:
    topics = commands.add_parser(
        "topics",
        help="manage the engine's topics",
        description="Manage the engine's four topics.",
        epilog=settings_help(IntakeSettings),
        formatter_class=FORMATTER,
    )
    actions = topics.add_subparsers(dest="topics_command", required=True)
    create = add_command(
        actions,
        "create",
        _topics_create,
        IntakeSettings,
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


def _topics_create(args: argparse.Namespace, settings: IntakeSettings) -> int:
    configs = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"execution-engine topics create: {item!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        configs[key] = value
    partitions = args.partitions or settings.topic_partitions
    replication = args.replication or settings.topic_replication
    statuses = asyncio.run(
        create_topics(settings, settings.max_record_bytes, partitions, replication, configs)
    )
    width = max(len(status.name) for status in statuses)
    print(f"{'topic':<{width}}  state    partitions  replication")
    for status in statuses:
        state = "created" if status.created else "exists"
        print(
            f"{status.name:<{width}}  {state:<7}  {status.partitions:>10}  {status.replication:>11}"
        )
    return 0
