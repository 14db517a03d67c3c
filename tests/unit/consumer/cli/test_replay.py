"""consumer/replay.py: which records a replay republishes, ranges, headers, the summary."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field

import pytest

from actions import default_registry
from consumer.cli.replay import (
    Latest,
    OffsetRange,
    PartitionReport,
    Progress,
    ReplayReport,
    Selection,
    Verdict,
    decide,
    format_report,
    parse_offset_range,
    replay_headers,
)
from consumer.pipeline.intake import Accepted, decode_record
from consumer.state.idempotency import reexecutes

REGISTRY = default_registry()


def decoded(body: object, headers: list[tuple[str, bytes]] | None = None) -> object:
    return decode_record(
        json.dumps(body).encode(),
        headers or [],
        topic="requests",
        partition=1,
        offset=7,
        max_bytes=10_000,
    )


VALID = decoded(
    {"request_id": "r1", "action": "log_message", "project": "p", "params": {"message": "m"}}
)
SUCCESS = Latest("success", None)
MISSING = Latest("error", "missing_credentials")
UPSTREAM = Latest("error", "upstream_error")


@pytest.mark.parametrize(
    ("latest", "selection", "verdict"),
    [
        (None, Selection(), Verdict.REPLAY),
        (MISSING, Selection(), Verdict.REPLAY),
        (SUCCESS, Selection(), Verdict.SUCCEEDED),
        (SUCCESS, Selection(include_succeeded=True), Verdict.REPLAY),
        (SUCCESS, Selection(only_failed=True, include_succeeded=True), Verdict.FILTERED),
        (None, Selection(only_failed=True), Verdict.FILTERED),
        (MISSING, Selection(only_failed=True), Verdict.REPLAY),
        (MISSING, Selection(codes=frozenset({"missing_credentials"})), Verdict.REPLAY),
        (UPSTREAM, Selection(codes=frozenset({"missing_credentials"})), Verdict.FILTERED),
        (
            UPSTREAM,
            Selection(only_failed=True, codes=frozenset({"upstream_error"})),
            Verdict.REPLAY,
        ),
    ],
)
def test_decide(latest: Latest | None, selection: Selection, verdict: Verdict) -> None:
    assert isinstance(VALID, Accepted)
    assert decide(VALID, latest, selection, REGISTRY) is verdict


@pytest.mark.parametrize(
    "record",
    [
        decode_record(b"\xff", [], topic="t", partition=0, offset=0, max_bytes=100),
        decoded({"action": "no_such_action", "project": "p", "params": {}}),
        decoded({"action": "send_slack", "project": "p", "params": {"channel": "#x"}}),
    ],
    ids=["not-json", "unknown-action", "invalid-params"],
)
def test_records_that_would_fail_again_are_never_replayed(record: object) -> None:
    everything = Selection(include_succeeded=True)
    assert decide(record, MISSING, everything, REGISTRY) is Verdict.INVALID  # type: ignore[arg-type]


def test_parse_offset_range() -> None:
    assert parse_offset_range("2:10-20") == OffsetRange(2, 10, 20)
    assert parse_offset_range("0:5") == OffsetRange(0, 5, None)
    for bad in ("x", "1", "1:", "1:9-3", "-1:0", "1:a-b"):
        with pytest.raises(ValueError):
            parse_offset_range(bad)


@dataclass
class FakeRecord:
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "requests"
    partition: int = 1
    offset: int = 7


def test_replay_headers_mark_the_copy_and_keep_the_request_id() -> None:
    tp = ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert isinstance(VALID, Accepted)
    own_id = replay_headers(FakeRecord([tp, ("replay-of", b"old")]), VALID)
    assert own_id == [tp, ("replay-of", b"requests:1:7")]

    no_id = decoded({"action": "log_message", "project": "p", "params": {"message": "m"}})
    assert isinstance(no_id, Accepted) and no_id.request_id == "requests:1:7"
    headers = replay_headers(FakeRecord([("request-id", b"bad id with spaces\n")]), no_id)
    assert headers == [("request-id", b"requests:1:7"), ("replay-of", b"requests:1:7")]


def test_include_succeeded_marks_copies_to_bypass_the_idempotency_check() -> None:
    assert isinstance(VALID, Accepted)
    # A forged marker on the original is never carried over; only the replay sets it.
    forged = FakeRecord([("replay-reexecute", b"1")])
    plain = replay_headers(forged, VALID)
    assert plain == [("replay-of", b"requests:1:7")] and not reexecutes(plain)
    marked = replay_headers(forged, VALID, reexecute=True)
    assert marked == [("replay-of", b"requests:1:7"), ("replay-reexecute", b"1")]
    assert reexecutes(marked)
    assert not reexecutes([("replay-reexecute", b"0")])


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
