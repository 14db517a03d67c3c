"""`replay()`: read the range, decide each record, republish the chosen ones, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from aiokafka import AIOKafkaConsumer

from actions.registry import ActionRegistry, default_registry
from consumer.broker.metadata import partitions_of
from consumer.cli.replay.ranges import OffsetRange, request_spans
from consumer.cli.replay.reading import Candidate, latest_envelopes, read_requests
from consumer.cli.replay.report import PartitionReport, ReplayReport
from consumer.cli.replay.republish import republish, wait_for_envelopes
from consumer.cli.replay.selection import Latest, Selection, Verdict, decide
from consumer.pipeline.intake import IntakeLimits
from consumer.settings import IntakeSettings

CLOCK_SKEW_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class ReplayOptions:
    selection: Selection = field(default_factory=Selection)
    ranges: tuple[OffsetRange, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    wait_s: float = 0.0  # > 0: wait that long for the replayed requests' envelopes


async def replay(
    settings: IntakeSettings,
    options: ReplayOptions,
    *,
    registry: ActionRegistry | None = None,
    progress_stream: TextIO | None = None,
) -> ReplayReport:
    registry = registry or default_registry()
    kafka = settings.kafka_client_options()
    reader = AIOKafkaConsumer(
        **kafka, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    try:
        await reader.start()
        # Both topics' metadata first: once partitions are assigned, the client only
        # refreshes metadata of the assigned topics.
        results = await partitions_of(reader, settings.results_topic)
        spans = await request_spans(
            reader, settings.requests_topic, options.ranges, options.since, options.until
        )
        results_end = await reader.end_offsets(results)
        candidates = await read_requests(
            reader,
            spans,
            IntakeLimits.from_settings(settings),
            since=options.since,
            until=options.until,
            stream=progress_stream,
        )
        wanted = {c.decoded.request_id for c in candidates}
        # An envelope follows its request: results older than the oldest candidate (less a
        # margin for the producers' clocks) cannot be any candidate's.
        oldest = min((c.record.timestamp for c in candidates), default=0)
        latest = await latest_envelopes(
            reader,
            results,
            results_end,
            wanted,
            progress_stream,
            since_ms=max(0, oldest - CLOCK_SKEW_MS),
        )
    finally:
        await reader.stop()

    report = ReplayReport(dry_run=options.dry_run)
    selected = _choose(candidates, latest, options.selection, registry, report)
    report.chosen = [(c.record.partition, c.record.offset, c.decoded.request_id) for c in selected]
    for tp in spans:
        report.partitions.setdefault(tp.partition, PartitionReport(tp.partition))
    if options.dry_run or not selected:
        return report

    await republish(
        settings, selected, progress_stream, reexecute=options.selection.include_succeeded
    )
    if options.wait_s > 0:
        ids = {c.decoded.request_id for c in selected}
        report.outcomes = await wait_for_envelopes(
            settings, results, results_end, ids, options.wait_s
        )
        report.waited = True
    return report


def _choose(
    candidates: list[Candidate],
    latest: dict[str, Latest],
    selection: Selection,
    registry: ActionRegistry,
    report: ReplayReport,
) -> list[Candidate]:
    """The records to republish, one per request id; every verdict counted in `report`."""
    chosen: dict[str, Candidate] = {}  # request_id -> the record to republish
    for candidate in candidates:
        record = candidate.record
        part = report.partitions.setdefault(record.partition, PartitionReport(record.partition))
        part.first = record.offset if part.first is None else part.first
        part.last = record.offset
        found = latest.get(candidate.decoded.request_id)
        verdict = decide(candidate.decoded, found, selection, registry)
        part.verdicts[verdict] += 1
        if verdict is not Verdict.REPLAY:
            continue
        earlier = chosen.get(candidate.decoded.request_id)
        if earlier is None:
            chosen[candidate.decoded.request_id] = candidate
            continue
        # One request id, several records (a producer retried, or a replay ran before):
        # re-executing it once is the point of an idempotency key. The latest one wins.
        older, newer = sorted((earlier, candidate), key=lambda c: c.record.timestamp)
        report.partitions[older.record.partition].verdicts[Verdict.REPLAY] -= 1
        report.partitions[older.record.partition].verdicts[Verdict.DUPLICATE] += 1
        chosen[candidate.decoded.request_id] = newer
    return list(chosen.values())
