"""What every command shares: its subparser (with the settings it reads as --help epilog), and
argument types. Each command reads only the settings it uses (`main` builds them), so a bad
variable that a command does not read cannot stop it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

from pydantic_settings import BaseSettings

from consumer.settings import settings_help

FORMATTER = argparse.RawDescriptionHelpFormatter
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
# A command's handler: its parsed arguments and its settings (None for a command that reads none).
Handler = Callable[[argparse.Namespace, Any], int]


def add_command(
    commands: Commands,
    name: str,
    handler: Handler,
    settings: type[BaseSettings] | None,
    **parser_options: Any,
) -> argparse.ArgumentParser:
    """A subcommand whose --help lists the settings it reads, and that `main` hands them."""
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
