"""`execution-engine replay`: re-execute a range of the requests topic, beside the live group.

How: the selected request records are published again, byte for byte, to the requests topic,
with a `replay-of: <topic>:<partition>:<offset>` header, and the live engine group executes them
like any other record. So the replay never joins or commits for the engine's group, nothing
runs outside the engine's limits and retries, and the invariant holds as it is: every consumed
record (the original and its copy) gets exactly one envelope. The copy keeps its request_id (a
request without one in its body gets the original's id in a `request-id` header), so its
envelope correlates with the original's and becomes the request's latest envelope.

What: records are read with a group-less, read_committed consumer (assign + seek; by offsets
and/or by time). A record's fate is decided by its latest envelope on the results topic (the
one with the highest offset; envelopes are keyed by request_id, so they share a partition):
succeeded requests are skipped unless `include_succeeded` (so a replay never re-sends a Slack
message by accident); `only_failed` keeps only requests whose latest envelope is an error
(`codes` narrows the error codes); records that would be rejected again (not a valid request,
unknown action, invalid params) are reported and never republished.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from actions import ActionRegistry, default_registry
from consumer.broker.topics import partitions_of
from consumer.pipeline.intake import Accepted, Rejected, decode_record
from consumer.settings import EngineSettings
from consumer.state.idempotency import REEXECUTE_HEADER

REPLAY_HEADER = "replay-of"
_FETCH_TIMEOUT_MS = 500


class Verdict(StrEnum):
    REPLAY = "replay"
    SUCCEEDED = "succeeded"  # latest envelope is a success
    FILTERED = "filtered"  # --only-failed / --codes left it out
    INVALID = "invalid"  # would be rejected again: replaying cannot change its outcome
    DUPLICATE = "duplicate"  # another record in the range has the same request_id


@dataclass(frozen=True)
class Latest:
    """A request's latest envelope on the results topic."""

    status: str
    error_code: str | None


@dataclass(frozen=True)
class Selection:
    only_failed: bool = False
    codes: frozenset[str] = frozenset()
    include_succeeded: bool = False


def decide(
    decoded: Accepted | Rejected,
    latest: Latest | None,
    selection: Selection,
    registry: ActionRegistry,
) -> Verdict:
    if isinstance(decoded, Rejected) or not _valid_for(decoded, registry):
        return Verdict.INVALID
    if latest is not None and latest.status == "success":
        if not selection.include_succeeded:
            return Verdict.SUCCEEDED
        return Verdict.FILTERED if selection.only_failed or selection.codes else Verdict.REPLAY
    if latest is None and (selection.only_failed or selection.codes):
        return Verdict.FILTERED  # no envelope (yet, or expired): not known to have failed
    if latest is not None and selection.codes and latest.error_code not in selection.codes:
        return Verdict.FILTERED
    return Verdict.REPLAY


def _valid_for(accepted: Accepted, registry: ActionRegistry) -> bool:
    action = registry.get(accepted.request.action)
    if action is None:
        return False
    try:
        action.params_model.model_validate(accepted.request.params)
    except ValidationError:
        return False
    return True


@dataclass(frozen=True)
class OffsetRange:
    """Offsets `start`..`end` of one partition, both included (`end` None: to the end)."""

    partition: int
    start: int
    end: int | None = None


def parse_offset_range(text: str) -> OffsetRange:
    """`P:START`, `P:START-END` (END included)."""
    try:
        partition, _, span = text.partition(":")
        start, _, end = span.partition("-")
        parsed = OffsetRange(int(partition), int(start), int(end) if end else None)
    except ValueError:
        raise ValueError(f"{text!r} is not PARTITION:START[-END]") from None
    if parsed.partition < 0 or parsed.start < 0 or (parsed.end is not None and parsed.end < 0):
        raise ValueError(f"{text!r}: partitions and offsets are not negative")
    if parsed.end is not None and parsed.end < parsed.start:
        raise ValueError(f"{text!r}: END is before START")
    return parsed


@dataclass(frozen=True)
class ReplayOptions:
    selection: Selection = Selection()
    ranges: tuple[OffsetRange, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    wait_s: float = 0.0  # > 0: wait that long for the replayed requests' envelopes


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

    def total(self, verdict: Verdict) -> int:
        return sum(p.verdicts[verdict] for p in self.partitions.values())


@dataclass(frozen=True)
class _Candidate:
    record: Any
    decoded: Accepted | Rejected


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


async def replay(
    settings: EngineSettings,
    options: ReplayOptions,
    *,
    registry: ActionRegistry | None = None,
    progress_stream: TextIO | None = None,
) -> ReplayReport:
    registry = registry or default_registry()
    kafka = settings.kafka_client_options()
    report = ReplayReport(dry_run=options.dry_run)
    reader = AIOKafkaConsumer(
        **kafka, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await reader.start()
    try:
        # Both topics' metadata first: once partitions are assigned, the client only
        # refreshes metadata of the assigned topics.
        results = await partitions_of(reader, settings.results_topic)
        spans = await _request_spans(reader, settings.requests_topic, options)
        results_end = await reader.end_offsets(results)
        candidates = await _read_requests(reader, spans, settings, options, progress_stream)
        wanted = {c.decoded.request_id for c in candidates}
        latest = await _latest_envelopes(reader, results, results_end, wanted, progress_stream)
    finally:
        await reader.stop()

    chosen: dict[str, _Candidate] = {}  # request_id -> the record to republish
    for candidate in candidates:
        record = candidate.record
        part = report.partitions.setdefault(record.partition, PartitionReport(record.partition))
        part.first = record.offset if part.first is None else part.first
        part.last = record.offset
        found = latest.get(candidate.decoded.request_id)
        verdict = decide(candidate.decoded, found, options.selection, registry)
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
    selected = list(chosen.values())
    for tp in spans:
        report.partitions.setdefault(tp.partition, PartitionReport(tp.partition))
    if options.dry_run or not selected:
        return report

    await _republish(
        settings, selected, progress_stream, reexecute=options.selection.include_succeeded
    )
    if options.wait_s > 0:
        ids = {c.decoded.request_id for c in selected}
        report.outcomes = await _wait_for_envelopes(
            settings, results, results_end, ids, options.wait_s
        )
        report.waited = True
    return report


async def _request_spans(
    reader: AIOKafkaConsumer, topic: str, options: ReplayOptions
) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, the offsets to read: [start, end), end frozen now so the copies this
    replay publishes are never read back."""
    partitions = await partitions_of(reader, topic)
    known = {tp.partition for tp in partitions}
    if options.ranges:
        unknown = sorted({r.partition for r in options.ranges} - known)
        if unknown:
            raise ValueError(f"{topic} has no partition {unknown[0]} (it has {len(known)})")
        chosen = {r.partition for r in options.ranges}
        partitions = [tp for tp in partitions if tp.partition in chosen]
    beginning = await reader.beginning_offsets(partitions)
    end = await reader.end_offsets(partitions)
    spans = {tp: (beginning[tp], end[tp]) for tp in partitions}
    for item in options.ranges:
        tp = TopicPartition(topic, item.partition)
        low, high = spans[tp]
        stop = high if item.end is None else min(high, item.end + 1)
        spans[tp] = (max(low, item.start), stop)
    if options.since is not None:
        found = await reader.offsets_for_times({tp: _ms(options.since) for tp in spans})
        for tp, at in found.items():
            low, high = spans[tp]
            spans[tp] = (high, high) if at is None else (max(low, at.offset), high)
    if options.until is not None:
        found = await reader.offsets_for_times({tp: _ms(options.until) + 1 for tp in spans})
        for tp, at in found.items():
            low, high = spans[tp]
            if at is not None:
                spans[tp] = (low, min(high, at.offset))
    return spans


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _read_span(
    reader: AIOKafkaConsumer,
    spans: dict[TopicPartition, tuple[int, int]],
    on_records: Callable[[list[Any]], None],
) -> None:
    """Every record in the spans (read_committed: aborted ones and markers are skipped)."""
    open_spans = {tp: span for tp, span in spans.items() if span[0] < span[1]}
    if not open_spans:
        return
    reader.assign(list(open_spans))
    for tp, (start, _) in open_spans.items():
        reader.seek(tp, start)
    while open_spans:
        batch = await reader.getmany(*open_spans, timeout_ms=_FETCH_TIMEOUT_MS)
        for tp, records in batch.items():
            start, end = open_spans.get(tp, (0, -1))
            inside = [r for r in records if start <= r.offset < end]
            if inside:
                on_records(inside)
        for tp in list(open_spans):
            if await reader.position(tp) >= open_spans[tp][1]:
                del open_spans[tp]


async def _read_requests(
    reader: AIOKafkaConsumer,
    spans: dict[TopicPartition, tuple[int, int]],
    settings: EngineSettings,
    options: ReplayOptions,
    stream: TextIO | None,
) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    progress = Progress("reading requests", sum(b - a for a, b in spans.values()), stream)
    since = _ms(options.since) if options.since else None
    until = _ms(options.until) if options.until else None

    def take(records: list[Any]) -> None:
        progress.advance(len(records))
        for record in records:
            # Offsets chose the span; the time bounds also hold inside it.
            if (since is not None and record.timestamp < since) or (
                until is not None and record.timestamp > until
            ):
                continue
            decoded = decode_record(
                record.value,
                record.headers,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                max_bytes=settings.max_record_bytes,
            )
            candidates.append(_Candidate(record, decoded))

    await _read_span(reader, spans, take)
    progress.close()
    return candidates


async def _latest_envelopes(
    reader: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    end: dict[TopicPartition, int],
    wanted: set[str],
    stream: TextIO | None,
) -> dict[str, Latest]:
    latest: dict[str, Latest] = {}
    if not wanted:
        return latest
    beginning = await reader.beginning_offsets(partitions)
    spans = {tp: (beginning[tp], end[tp]) for tp in partitions}
    progress = Progress("reading results ", sum(b - a for a, b in spans.values()), stream)
    keys = {request_id.encode(): request_id for request_id in wanted}

    def take(records: list[Any]) -> None:
        progress.advance(len(records))
        for record in records:
            request_id = keys.get(record.key or b"")
            if request_id is None:
                continue
            found = _parse_latest(record.value)
            if found is not None:
                latest[request_id] = found  # later offsets overwrite earlier ones

    await _read_span(reader, spans, take)
    progress.close()
    return latest


def _parse_latest(value: bytes | None) -> Latest | None:
    try:
        envelope = json.loads(value or b"")
        status = envelope["status"]
        error = envelope.get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Latest(str(status), str(code) if code is not None else None)


def replay_headers(
    record: Any, decoded: Accepted, *, reexecute: bool = False
) -> list[tuple[str, bytes]]:
    """The original headers, marked as a replay; a request whose id is not in its body
    carries it in `request-id`, so the copy keeps the original's id. `reexecute` (with
    `--include-succeeded`) makes the engine run it even if its request_id succeeded."""
    headers = [
        (key, value)
        for key, value in record.headers
        if key.lower() not in (REPLAY_HEADER, REEXECUTE_HEADER)
        and not (key.lower() == "request-id" and decoded.request.request_id is None)
    ]
    if decoded.request.request_id is None:
        headers.append(("request-id", decoded.request_id.encode()))
    source = f"{record.topic}:{record.partition}:{record.offset}"
    headers.append((REPLAY_HEADER, source.encode()))
    if reexecute:
        headers.append((REEXECUTE_HEADER, b"1"))
    return headers


async def _republish(
    settings: EngineSettings,
    selected: list[_Candidate],
    stream: TextIO | None,
    *,
    reexecute: bool = False,
) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(),
        enable_idempotence=True,
        acks="all",
        max_request_size=max(1_048_576, settings.max_record_bytes) + 65_536,
    )
    await producer.start()
    progress = Progress("republishing    ", len(selected), stream)
    try:
        for chunk in _chunks(selected, 500):
            deliveries = []
            for candidate in chunk:
                assert isinstance(candidate.decoded, Accepted)
                record = candidate.record
                deliveries.append(
                    await producer.send(
                        settings.requests_topic,
                        value=record.value,
                        key=record.key,
                        headers=replay_headers(record, candidate.decoded, reexecute=reexecute),
                    )
                )
            await asyncio.gather(*deliveries)
            progress.advance(len(chunk))
    finally:
        progress.close()
        await producer.stop()


def _chunks(items: list[_Candidate], size: int) -> Iterable[list[_Candidate]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


async def _wait_for_envelopes(
    settings: EngineSettings,
    partitions: list[TopicPartition],
    start: dict[TopicPartition, int],
    request_ids: set[str],
    wait_s: float,
) -> Counter[tuple[str, str]]:
    """Outcomes of the replayed requests: the envelopes published after the replay began."""
    outcomes: Counter[tuple[str, str]] = Counter()
    pending = {request_id.encode(): request_id for request_id in request_ids}
    reader = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await reader.start()
    try:
        reader.assign(partitions)
        for tp in partitions:
            reader.seek(tp, start[tp])
        deadline = time.monotonic() + wait_s
        while pending and time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
            for records in batch.values():
                for record in records:
                    if record.offset < start[TopicPartition(record.topic, record.partition)]:
                        continue  # an envelope from before the replay
                    if pending.pop(record.key or b"", None) is None:
                        continue
                    found = _parse_latest(record.value)
                    if found is not None:
                        outcomes[(found.status, found.error_code or "")] += 1
    finally:
        await reader.stop()
    if pending:
        outcomes[("no envelope", "")] += len(pending)
    return outcomes


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
