"""`execution-engine replay`: its arguments, and the summary it prints."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from consumer.cli.replay.replayer import ReplayOptions, replay
from consumer.cli.replay.report import format_report
from consumer.cli.replay.selection import Selection


def command(args: argparse.Namespace, settings: Any) -> int:
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
    except ValueError as exc:
        print(f"execution-engine replay: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0
