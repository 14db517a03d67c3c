"""`execution-engine topics create`: the engine's four topics, when missing (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from consumer.broker.topics import create_topics
from consumer.settings import IntakeSettings


def command(args: argparse.Namespace, settings: IntakeSettings) -> int:
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
