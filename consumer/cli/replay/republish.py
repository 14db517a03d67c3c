"""Publishing for a replay: the chosen records again, marked as copies, and (with --wait) the
outcomes of the envelopes they get."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.cli.replay.reading import Candidate
from consumer.cli.replay.report import Progress
from consumer.cli.replay.selection import parse_latest
from consumer.pipeline.intake import Accepted
from consumer.settings import IntakeSettings
from consumer.state.idempotency import REEXECUTE_HEADER

REPLAY_HEADER = "replay-of"
_FETCH_TIMEOUT_MS = 500


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


async def republish(
    settings: IntakeSettings,
    selected: list[Candidate],
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
    progress = Progress("republishing    ", len(selected), stream)
    try:
        await producer.start()
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


def _chunks(items: list[Candidate], size: int) -> Iterable[list[Candidate]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


async def wait_for_envelopes(
    settings: IntakeSettings,
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
    try:
        await reader.start()
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
                    found = parse_latest(record.value)
                    if found is not None:
                        outcomes[(found.status, found.error_code or "")] += 1
    finally:
        await reader.stop()
    if pending:
        outcomes[("no envelope", "")] += len(pending)
    return outcomes
