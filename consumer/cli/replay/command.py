"""`execution-engine replay`: its arguments, and the summary it prints."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from consumer.cli.command import Commands, add_command, moment
from consumer.cli.replay.ranges import OffsetRange, parse_offset_range
from consumer.cli.replay.replayer import ReplayOptions, replay
from consumer.cli.replay.report import format_report
from consumer.cli.replay.selection import Selection
from consumer.settings import IntakeSettings
from schemas import ErrorCode


def add_replay(commands: Commands) -> None:
    parser = add_command(
        commands,
        "replay",
        _replay,
        IntakeSettings,
        help="re-execute a range of the requests topic (beside the live group)",
        description="Re-execute a range of the requests topic without disturbing the live "
        "group: the selected records are published again to the requests topic (same key, "
        "value and request_id, plus a `replay-of` header) and the running engines execute "
        "them. Requests whose latest envelope is a success are skipped unless "
        "--include-succeeded; records that would be rejected again are never republished. "
        "Progress goes to stderr, a summary table to stdout.",
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


def _offset_range(text: str) -> OffsetRange:
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


def _replay(args: argparse.Namespace, settings: Any) -> int:
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
