"""`execution-engine`: one subcommand per module (run, send, replay, topics, tail, schemas)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from consumer.cli.command import FORMATTER
from consumer.cli.failures import explain
from consumer.cli.replay import add_replay
from consumer.cli.run import add_run
from consumer.cli.schemas import add_schemas
from consumer.cli.send import add_send
from consumer.cli.tail import add_tail
from consumer.cli.topics import add_topics
from consumer.settings import settings_help


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.debug and args.command != "run":
        # The client library's own lines repeat what the one line below says (the engine
        # routes them through its own logging).
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    settings = None
    try:
        if args.settings is not None:
            # Only what this command reads: a bad variable it does not use cannot stop it.
            settings = args.settings()
        result: int = args.handler(args, settings)
    except Exception as exc:
        failure = None if args.debug else explain(exc, settings, args.settings)
        if failure is None:
            raise
        for line in failure.lines:
            print(f"execution-engine {args.command}: {line}", file=sys.stderr)
        return failure.exit_code
    return result


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="execution-engine",
        description="PURAIFY Execution Engine: Kafka requests in, actions run, envelopes out.",
        epilog=settings_help(),
        formatter_class=FORMATTER,
    )
    root.add_argument(
        "--debug", action="store_true", help="tracebacks and the Kafka client's own log lines"
    )
    commands = root.add_subparsers(dest="command", required=True)
    for add in (add_run, add_send, add_replay, add_topics, add_tail, add_schemas):
        add(commands)
    return root


if __name__ == "__main__":
    sys.exit(main())
