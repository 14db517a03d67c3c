"""`execution-engine`: one subcommand per module (run, send, replay, topics, tail, schemas)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from consumer.cli.command import FORMATTER
from consumer.cli.replay import add_replay
from consumer.cli.run import add_run
from consumer.cli.schemas import add_schemas
from consumer.cli.send import add_send
from consumer.cli.tail import add_tail
from consumer.cli.topics import add_topics
from consumer.settings import settings_help


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = None
    if args.settings is not None:
        # Only what this command reads: a bad variable it does not use cannot stop it.
        try:
            settings = args.settings()
        except ValidationError as exc:
            print(f"execution-engine: invalid settings:\n{exc}", file=sys.stderr)
            return 2
    result: int = args.handler(args, settings)
    return result


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="execution-engine",
        description="PURAIFY Execution Engine: Kafka requests in, actions run, envelopes out.",
        epilog=settings_help(),
        formatter_class=FORMATTER,
    )
    commands = root.add_subparsers(dest="command", required=True)
    for add in (add_run, add_send, add_replay, add_topics, add_tail, add_schemas):
        add(commands)
    return root


if __name__ == "__main__":
    sys.exit(main())
