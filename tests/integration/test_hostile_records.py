"""Hostile records through the running engine on a real broker (hypothesis-generated).

More than 10,000 records of every hostile kind (tests/hostile.py), valid requests interleaved,
go in as fast as the broker takes them. Each record yields exactly one envelope with the code
its construction dictates; the unreadable ones also land byte for byte on the dead-letter topic;
the valid ones succeed; every offset is committed (nothing stalled a partition); and the engine
never hit its bug path.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from consumer.ops.logging import configure_logging
from tests.hostile import Hostile, Limits, hostile_records
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import committed_total, create_topic, read_topic

LIMITS = Limits()
BATCHES, PER_BATCH = 205, 50  # 10,250 records
Headers = tuple[tuple[str, bytes], ...]

keys = st.one_of(st.none(), st.sampled_from([b"lane-a", b"lane-b", b""]), st.binary(max_size=12))
# Headers a hostile producer might add; the engine must ignore what it cannot use.
junk_headers = st.sampled_from(
    [(), (("traceparent", b"\xff\xfe"),), (("x-junk", b"\x00" * 8),), (("request-id", b"\xff"),)]
)


@dataclass(frozen=True)
class Sent:
    record: Hostile
    key: bytes | None
    headers: Headers
    # Carried in the `request-id` header; None: the id is the record's topic:partition:offset.
    request_id: str | None


def generate() -> list[tuple[Hostile, bytes | None, Headers, bool]]:
    drawn: list[tuple[Hostile, bytes | None, Headers, bool]] = []

    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.lists(
            st.tuples(hostile_records(LIMITS), keys, junk_headers, st.integers(0, 19)),
            min_size=PER_BATCH,
            max_size=PER_BATCH,
        )
    )
    def collect(batch: list[tuple[Hostile, bytes | None, Headers, int]]) -> None:
        # One record in twenty carries no request-id header: its id is its offset.
        drawn.extend((record, key, headers, n != 0) for record, key, headers, n in batch)

    collect()
    return drawn


async def produce_all(bootstrap: str, topic: str, records: list[Sent]) -> list[Any]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=20, max_batch_size=524_288
    )
    await producer.start()
    try:
        futures = []
        for sent in records:
            headers = list(sent.headers)
            if sent.request_id is not None:
                headers = [h for h in headers if h[0] != "request-id"]
                headers.append(("request-id", sent.request_id.encode()))
            futures.append(
                await producer.send(topic, value=sent.record.value, key=sent.key, headers=headers)
            )
        return [await future for future in futures]
    finally:
        await producer.stop()


async def test_hostile_records_each_get_one_envelope_with_the_right_code(
    kafka_bootstrap: str, topics: Topics
) -> None:
    started = time.monotonic()
    drawn = generate()
    sent = [
        # Kafka has no record without both key and value: a tombstone always has a key.
        Sent(
            record,
            key if record.value is not None else key or b"t",
            headers,
            f"fz-{i}" if with_id else None,
        )
        for i, (record, key, headers, with_id) in enumerate(drawn)
    ]
    generated_s = time.monotonic() - started
    assert len(sent) >= 10_000
    kinds = Counter(s.record.kind.split(":")[0] for s in sent)
    assert len(kinds) >= 13 and min(kinds.values()) >= 100, kinds

    logs = io.StringIO()
    configure_logging("warning", stream=logs)
    await create_topic(kafka_bootstrap, topics.requests, partitions=3)
    settings = engine_settings(
        kafka_bootstrap,
        topics,
        max_record_bytes=LIMITS.max_bytes,
        max_json_depth=LIMITS.max_depth,
        max_params_bytes=LIMITS.max_params_bytes,
    )
    async with running_engine(settings):
        metadata = await produce_all(kafka_bootstrap, topics.requests, sent)
        results = await read_topic(
            kafka_bootstrap, topics.results, expect=len(sent), timeout_s=120, grace_s=1.0
        )
        dead = await read_topic(
            kafka_bootstrap,
            topics.dead_letter,
            expect=sum(s.record.dead_lettered for s in sent),
            timeout_s=30,
            grace_s=0.5,
        )
    elapsed_s = time.monotonic() - started

    by_id: dict[str, Sent] = {}
    by_offset: dict[tuple[int, int], Sent] = {}
    for s, md in zip(sent, metadata, strict=True):
        request_id = s.request_id or f"{topics.requests}:{md.partition}:{md.offset}"
        by_id[request_id] = s
        by_offset[(md.partition, md.offset)] = s

    envelopes: dict[str, list[dict[str, Any]]] = {}
    for record in results:
        envelope = json.loads(record.value)
        envelopes.setdefault(envelope["request_id"], []).append(envelope)
    assert set(envelopes) == set(by_id), "an envelope is missing or has a foreign request_id"
    wrong = []
    for request_id, got in envelopes.items():
        assert len(got) == 1, f"{request_id}: {len(got)} envelopes"
        expected = by_id[request_id].record.expected
        code = got[0]["error"]["code"] if got[0]["error"] else None
        if code != (expected.value if expected else None) or (
            (got[0]["status"] == "success") != (expected is None)
        ):
            wrong.append((by_id[request_id].record.kind, expected, code, got[0]["error"]))
    assert not wrong, wrong[:10]
    assert sum(s.record.expected is None for s in sent) >= 500  # valid requests interleaved

    # The unreadable ones, and only they, are dead letters: the original bytes, unchanged.
    assert len(dead) == sum(s.record.dead_lettered for s in sent)
    for record in dead:
        headers = dict(record.headers)
        original = by_offset[(int(headers["source-partition"]), int(headers["source-offset"]))]
        assert original.record.dead_lettered
        assert record.value == original.record.value
        assert record.key == original.key
        assert headers["error-code"].decode() == original.record.intake_code.value  # type: ignore[union-attr]

    # Nothing stalled: every offset was committed, and the engine never took its bug path.
    assert await committed_total(kafka_bootstrap, topics.group, topics.requests) == len(sent)
    events = [json.loads(line)["event"] for line in logs.getvalue().split("\n") if line]
    assert "engine.bug" not in events
    assert not {"envelope.unrenderable", "envelope.too_large", "dead_letter.too_large"} & set(
        events
    )
    print(
        f"\nfuzzed {len(sent)} records ({dict(kinds)}) in {elapsed_s:.1f} s "
        f"(generation {generated_s:.1f} s); {len(dead)} dead letters"
    )
