"""`execution-engine`: one subcommand per module (run, send, replay, topics, tail, schemas).

The parser is built from `command` alone; a command's handler and settings are imported when it
runs, so `--help` and `--version` answer without loading the engine."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from consumer.cli.catalog import SETTINGS
from consumer.cli.command import FORMATTER, add_commands


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.debug and args.command != "run":
        # The client library's own lines repeat what the one line below says (the engine
        # routes them through its own logging).
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    settings = None
    schema = None if args.settings is None else load(SETTINGS[args.settings], args.settings)
    try:
        if schema is not None:
            # Only what this command reads: a bad variable it does not use cannot stop it.
            settings = schema()
        module, _, function = args.handler.partition(":")
        result: int = load(module, function)(args, settings)
    except Exception as exc:
        from consumer.cli.failures import explain  # noqa: PLC0415 - only when failing

        failure = None if args.debug else explain(exc, settings, schema)
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
        epilog="Each command's --help lists the settings (environment variables) it reads.",
        formatter_class=FORMATTER,
    )
    root.add_argument(
        "--debug", action="store_true", help="tracebacks and the Kafka client's own log lines"
    )
    root.add_argument(
        "--version", action=_Version, help="the version, commit, aiokafka and Python versions"
    )
    commands = root.add_subparsers(dest="command", required=True)
    add_commands(commands)
    return root


def load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


class _Version(argparse.Action):
    """Like argparse's "version" action, the line computed only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from consumer.ops.build import build_info  # noqa: PLC0415 - only for --version

        print(build_info().line())
        parser.exit()


if __name__ == "__main__":
    sys.exit(main())
