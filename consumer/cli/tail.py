"""`execution-engine tail results|logs|dead-letter`: read an output topic, filtered, one line each.

A group-less read_committed consumer (it commits nothing and joins no group), so tailing never
disturbs the engines. It prints the N newest matching records in time order, read backwards
from each partition's end (`newest`: never more of the topic than that needs); with --follow
it then keeps printing new ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer

from consumer.broker.metadata import partitions_of
from consumer.broker.settings import KafkaClientSettings
from consumer.cli.command import TailKind
from consumer.cli.newest import FETCH_BYTES, Newest, newest
from consumer.pipeline.intake import header_text

_PREVIEW = 160
# Log event fields printed in the fixed columns, not repeated among the rest.
_LOG_COLUMNS = ("timestamp", "level", "event", "request_id", "action", "project", "service")


@dataclass(frozen=True)
class TailFilter:
    request_id: str | None = None
    status: str | None = None
    project: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class Entry:
    """One record, read: the fields filters look at, and its line."""

    timestamp_ms: int
    fields: dict[str, Any]
    line: str
    raw: str


def topic_of(settings: KafkaClientSettings, kind: TailKind) -> str:
    return {
        "results": settings.results_topic,
        "logs": settings.logs_topic,
        "dead-letter": settings.dead_letter_topic,
    }[kind]


def read_entry(kind: TailKind, record: Any) -> Entry:
    if kind == "dead-letter":
        return _dead_letter(record)
    body = _json_object(record.value)
    if body is None:
        text = _preview(record.value)
        return Entry(record.timestamp, {}, f"{_when(record.timestamp)}  (not JSON) {text}", text)
    raw = json.dumps(body, ensure_ascii=False)
    if kind == "results":
        return Entry(record.timestamp, body, _envelope_line(body), raw)
    return Entry(record.timestamp, body, _log_line(body), raw)


def matches(entry: Entry, wanted: TailFilter) -> bool:
    fields = entry.fields
    error = fields.get("error")
    checks = {
        "request_id": wanted.request_id,
        "status": wanted.status,
        "project": wanted.project,
        "action": wanted.action,
    }
    for name, value in checks.items():
        if value is None:
            continue
        if name == "status" and value not in ("success", "error"):
            # A log level or an error code is accepted as a status too.
            got = {fields.get("level"), error.get("code") if isinstance(error, dict) else None}
            if value not in got:
                return False
            continue
        if fields.get(name) != value:
            return False
    return True


def _envelope_line(envelope: dict[str, Any]) -> str:
    error = envelope.get("error")
    outcome = str(envelope.get("status"))
    if isinstance(error, dict):
        outcome += f" {error.get('code')}: {error.get('message')}"
    return "  ".join(
        [
            str(envelope.get("finished_at")),
            str(envelope.get("request_id")),
            f"{envelope.get('action') or '-'}/{envelope.get('project') or '-'}",
            f"{envelope.get('duration_ms')} ms x{envelope.get('attempts')}",
            outcome,
        ]
    )


def _log_line(event: dict[str, Any]) -> str:
    rest = " ".join(
        f"{key}={json.dumps(value, ensure_ascii=False)}"
        for key, value in event.items()
        if key not in _LOG_COLUMNS
    )
    return "  ".join(
        part
        for part in [
            str(event.get("timestamp")),
            f"{event.get('level', '?'):<7}",
            str(event.get("event")),
            str(event.get("request_id") or "-"),
            rest,
        ]
        if part
    )


def _dead_letter(record: Any) -> Entry:
    headers = record.headers
    body = _json_object(record.value) or {}
    fields = {
        "request_id": header_text(headers, "request-id") or body.get("request_id"),
        "project": body.get("project"),
        "action": body.get("action"),
        "error": {"code": header_text(headers, "error-code")},
    }
    source = ":".join(
        header_text(headers, name) or "?"
        for name in ("source-topic", "source-partition", "source-offset")
    )
    text = _preview(record.value)
    line = "  ".join(
        [
            _when(record.timestamp),
            source,
            f"{header_text(headers, 'error-code')}: {header_text(headers, 'error-message')}",
            f"key={_preview(record.key)}",
            f"value={text}",
        ]
    )
    raw = json.dumps(
        {
            "headers": {k: _preview(v) for k, v in headers},
            "key": _preview(record.key),
            "value": text,
        }
    )
    return Entry(record.timestamp, fields, line, raw)


def _json_object(value: bytes | None) -> dict[str, Any] | None:
    try:
        body = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _preview(value: bytes | None) -> str:
    if value is None:
        return "null"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return f"0x{value[: _PREVIEW // 2].hex()}" + ("…" if len(value) > _PREVIEW // 2 else "")
    text = text if text.isprintable() else repr(text)
    return text[:_PREVIEW] + ("…" if len(text) > _PREVIEW else "")


def _when(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def tail(
    settings: KafkaClientSettings,
    kind: TailKind,
    wanted: TailFilter,
    out: TextIO,
    *,
    lines: int | None = 10,
    since: datetime | None = None,
    follow: bool = False,
    as_json: bool = False,
    stop: asyncio.Event | None = None,
) -> Newest[Entry]:
    """Print the `lines` newest matching records (None: all; 0: none) in time order, then
    follow if asked. Returns what was printed first, and how many records were read for it."""
    topic = topic_of(settings, kind)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=FETCH_BYTES,
    )

    def show(entry: Entry) -> None:
        out.write((entry.raw if as_json else entry.line) + "\n")
        out.flush()

    def keep(record: Any) -> Entry | None:
        entry = read_entry(kind, record)
        return entry if matches(entry, wanted) else None

    try:
        await consumer.start()
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        # Paused until `newest` seeks: else the client long-polls the end of every partition
        # first (fetch_max_wait_ms) and the first window waits for that fetch to return.
        consumer.pause(*partitions)
        end = await consumer.end_offsets(partitions)
        if since is None:
            low = await consumer.beginning_offsets(partitions)
        else:
            found = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            low = {tp: end[tp] if at is None else at.offset for tp, at in found.items()}
        first = await newest(consumer, low, end, lines, keep)
        for entry in first.items:
            show(entry)
        if follow:
            consumer.resume(*partitions)
            for tp in partitions:
                consumer.seek(tp, end[tp])
        while follow and not (stop is not None and stop.is_set()):
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    if (found := keep(record)) is not None:
                        show(found)
    finally:
        await consumer.stop()
    return first


def command(args: argparse.Namespace, settings: KafkaClientSettings) -> int:
    wanted = TailFilter(args.request_id, args.status, args.project, args.action)

    async def run() -> Newest[Entry]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await tail(
            settings,
            args.topic,
            wanted,
            sys.stdout,
            lines=args.lines,
            since=args.since,
            follow=args.follow,
            as_json=args.json,
            stop=stop,
        )

    asyncio.run(run())
    return 0
