"""What a replay tells its user: progress on stderr, and the summary table on stdout."""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from consumer.cli.replay.selection import Verdict


@dataclass
class PartitionReport:
    partition: int
    first: int | None = None
    last: int | None = None
    verdicts: Counter[Verdict] = field(default_factory=Counter)

    @property
    def scanned(self) -> int:
        return sum(self.verdicts.values())


@dataclass
class ReplayReport:
    dry_run: bool
    partitions: dict[int, PartitionReport] = field(default_factory=dict)
    # Filled when waiting: (status, error code or "") -> count; "no envelope" when none came.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    waited: bool = False
    # The records chosen (partition, offset, request_id): a dry run lists them.
    chosen: list[tuple[int, int, str]] = field(default_factory=list)

    def total(self, verdict: Verdict) -> int:
        return sum(p.verdicts[verdict] for p in self.partitions.values())


class Progress:
    """A one-line progress bar on a terminal; on anything else, a line every few seconds."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = max(total, 0)
        self._done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._last_line = 0.0
        self._shown = -1  # the count last shown

    def advance(self, count: int) -> None:
        self._done += count
        now = time.monotonic()
        if self._tty or now - self._last_line >= 2.0:
            self._last_line = now
            self._show(end="\r" if self._tty else "\n")

    def close(self) -> None:
        if self._tty or self._shown != self._done:
            self._show(end="\n")

    def _show(self, end: str) -> None:
        self._shown = self._done
        total = max(self._total, self._done)
        fraction = self._done / total if total else 1.0
        filled = int(fraction * 30)
        bar = "#" * filled + "-" * (30 - filled)
        self._stream.write(f"{self._label} [{bar}] {self._done}/{total} {fraction:4.0%}{end}")
        self._stream.flush()


def format_report(report: ReplayReport) -> str:
    """The summary table printed at the end."""
    action = "would replay" if report.dry_run else "replayed"
    header = ["partition", "offsets", "scanned", action, "skip: succeeded", "skip: filtered"]
    header += ["skip: invalid", "skip: duplicate"]
    rows = []
    for number in sorted(report.partitions):
        part = report.partitions[number]
        span = "-" if part.first is None else f"{part.first}-{part.last}"
        rows.append(
            [
                str(number),
                span,
                str(part.scanned),
                *(str(part.verdicts[v]) for v in Verdict),
            ]
        )
    totals = ["total", "", str(sum(p.scanned for p in report.partitions.values()))]
    totals += [str(report.total(v)) for v in Verdict]
    lines = _table(header, rows, totals)
    if report.waited:
        lines.append("")
        outcome_rows = [
            [status, code or "-", str(count)]
            for (status, code), count in sorted(report.outcomes.items())
        ]
        lines += _table(["outcome", "error code", "requests"], outcome_rows)
    if report.dry_run and report.chosen:
        lines.append("")
        rows = [[str(p), str(o), request_id] for p, o, request_id in sorted(report.chosen)]
        lines += _table(["partition", "offset", "request_id (would replay)"], rows)
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], total: list[str] | None = None) -> list[str]:
    everything = [header, *rows, *([total] if total else [])]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [line(header), rule, *(line(row) for row in rows)]
    if total is not None:
        lines += [rule, line(total)]
    return lines
