"""Reading for a replay: the request records in the spans, decoded as the engine decodes them,
and the latest envelope of each request on the results topic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.cli.replay.ranges import Spans, ms
from consumer.cli.replay.report import Progress
from consumer.cli.replay.selection import Latest, parse_latest
from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record

_FETCH_TIMEOUT_MS = 500


@dataclass(frozen=True)
class Candidate:
    """A request record of the range, and what intake makes of it."""

    record: Any
    decoded: Accepted | Rejected


async def read_span(
    reader: AIOKafkaConsumer,
    spans: Spans,
    on_records: Callable[[list[Any]], None],
    progress: Progress,
) -> None:
    """Every record in the spans (read_committed: aborted ones and markers are skipped).
    Progress counts offsets passed, markers and aborted records included, so it ends at 100 %."""
    open_spans = {tp: span for tp, span in spans.items() if span[0] < span[1]}
    if not open_spans:
        return
    reader.assign(list(open_spans))
    passed = {tp: start for tp, (start, _) in open_spans.items()}
    for tp, start in passed.items():
        reader.seek(tp, start)
    while open_spans:
        batch = await reader.getmany(*open_spans, timeout_ms=_FETCH_TIMEOUT_MS)
        for tp, records in batch.items():
            start, end = open_spans.get(tp, (0, -1))
            inside = [r for r in records if start <= r.offset < end]
            if inside:
                on_records(inside)
        for tp in list(open_spans):
            end = open_spans[tp][1]
            position = min(await reader.position(tp), end)
            if position > passed[tp]:
                progress.advance(position - passed[tp])
                passed[tp] = position
            if position >= end:
                del open_spans[tp]


async def read_requests(
    reader: AIOKafkaConsumer,
    spans: Spans,
    limits: IntakeLimits,
    *,
    since: datetime | None,
    until: datetime | None,
    stream: TextIO | None,
) -> list[Candidate]:
    candidates: list[Candidate] = []
    progress = Progress("reading requests", sum(b - a for a, b in spans.values()), stream)
    since_ms = ms(since) if since else None
    until_ms = ms(until) if until else None

    def take(records: list[Any]) -> None:
        for record in records:
            # Offsets chose the span; the time bounds also hold inside it.
            if (since_ms is not None and record.timestamp < since_ms) or (
                until_ms is not None and record.timestamp > until_ms
            ):
                continue
            decoded = decode_record(
                record.value,
                record.headers,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                limits=limits,
            )
            candidates.append(Candidate(record, decoded))

    await read_span(reader, spans, take, progress)
    progress.close()
    return candidates


async def latest_envelopes(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    end: dict[TopicPartition, int],
    wanted: set[str],
    stream: TextIO | None,
    *,
    since_ms: int,
) -> dict[str, Latest]:
    """The latest envelope of each wanted request, read from the results published since
    `since_ms` (found with offsets_for_times), not from the topic's beginning."""
    latest: dict[str, Latest] = {}
    if not wanted:
        return latest
    found = await reader.offsets_for_times({tp: since_ms for tp in partitions})
    spans = {
        tp: (end[tp] if at is None else min(at.offset, end[tp]), end[tp])
        for tp, at in found.items()
    }
    progress = Progress("reading results ", sum(b - a for a, b in spans.values()), stream)
    keys = {request_id.encode(): request_id for request_id in wanted}

    def take(records: list[Any]) -> None:
        for record in records:
            request_id = keys.get(record.key or b"")
            if request_id is None:
                continue
            found = parse_latest(record.value)
            if found is not None:
                latest[request_id] = found  # later offsets overwrite earlier ones

    await read_span(reader, spans, take, progress)
    progress.close()
    return latest
