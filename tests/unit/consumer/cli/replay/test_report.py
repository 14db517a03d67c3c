"""consumer/cli/replay/report.py: the summary table and the progress lines."""

from __future__ import annotations

import io
from collections import Counter

from consumer.cli.replay import PartitionReport, Progress, ReplayReport, Verdict, format_report


def test_format_report_has_rows_totals_and_outcomes() -> None:
    report = ReplayReport(dry_run=False)
    report.partitions[0] = PartitionReport(
        0, 0, 4, Counter({Verdict.REPLAY: 2, Verdict.SUCCEEDED: 3})
    )
    report.partitions[1] = PartitionReport(1)
    report.outcomes = Counter({("success", ""): 1, ("error", "upstream_error"): 1})
    report.waited = True
    lines = format_report(report).splitlines()
    assert lines[0].split() == [
        "partition",
        "offsets",
        "scanned",
        "replayed",
        "skip:",
        "succeeded",
        "skip:",
        "filtered",
        "skip:",
        "invalid",
        "skip:",
        "duplicate",
    ]
    assert lines[2].split() == ["0", "0-4", "5", "2", "3", "0", "0", "0"]
    assert lines[3].split() == ["1", "-", "0", "0", "0", "0", "0", "0"]
    assert lines[5].split() == ["total", "5", "2", "3", "0", "0", "0"]
    assert ["error", "upstream_error", "1"] in [line.split() for line in lines]
    assert "would replay" in format_report(ReplayReport(dry_run=True))


def test_progress_on_a_pipe_prints_lines_and_a_final_one() -> None:
    stream = io.StringIO()
    progress = Progress("reading", 10, stream)
    progress.advance(5)
    progress.advance(5)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("reading [###############---------------] 5/10")
    assert lines[-1].endswith("10/10 100%")
