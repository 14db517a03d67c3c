"""`execution-engine send`: publish one request; with --wait, print its envelope."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumer.broker.metadata import partitions_of
from consumer.broker.settings import KafkaClientSettings


def command(args: argparse.Namespace, settings: KafkaClientSettings) -> int:
    try:
        params = json.loads(args.params)
        metadata = json.loads(args.metadata) if args.metadata else None
    except ValueError as exc:
        print(f"execution-engine send: --params/--metadata is not JSON: {exc}", file=sys.stderr)
        return 2
    request: dict[str, Any] = {
        "request_id": args.request_id or str(uuid.uuid4()),
        "action": args.action,
        "project": args.project,
        "params": params,
    }
    if metadata is not None:
        request["metadata"] = metadata
    envelope = asyncio.run(_send_request(settings, request, args.key, args.wait, args.timeout))
    if not args.wait:
        print(json.dumps({"request_id": request["request_id"], "sent": True}))
        return 0
    if envelope is None:
        print(
            f"execution-engine send: no envelope for {request['request_id']} within "
            f"{args.timeout:g} s (is `execution-engine run` running?)",
            file=sys.stderr,
        )
        return 3
    print(json.dumps(envelope, indent=2))
    return 0 if envelope.get("status") == "success" else 1


async def _send_request(
    settings: KafkaClientSettings,
    request: dict[str, Any],
    key: str | None,
    wait: bool,
    wait_s: float,
) -> dict[str, Any] | None:
    kafka = settings.kafka_client_options()
    results = None
    if wait:
        # Position at the end of the results topic *before* sending, so the envelope cannot
        # be missed however fast the engine is.
        results = AIOKafkaConsumer(
            **kafka, isolation_level="read_committed", enable_auto_commit=False
        )
    try:
        if results is not None:
            await results.start()
            partitions = await partitions_of(results, settings.results_topic)
            results.assign(partitions)
            await results.seek_to_end(*partitions)
            for tp in partitions:
                await results.position(tp)
        producer = AIOKafkaProducer(**kafka, enable_idempotence=True)
        try:
            await producer.start()
            await producer.send_and_wait(
                settings.requests_topic,
                json.dumps(request).encode(),
                key=key.encode() if key else None,
            )
        finally:
            await producer.stop()
        if results is None:
            return None
        try:
            return await asyncio.wait_for(_find_envelope(results, request["request_id"]), wait_s)
        except TimeoutError:
            return None
    finally:
        # Stopped also when starting failed: no "Unclosed AIOKafkaConsumer" at exit.
        if results is not None:
            await results.stop()


async def _find_envelope(consumer: AIOKafkaConsumer, request_id: str) -> dict[str, Any]:
    wanted = request_id.encode()
    while True:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for record in records:
                if record.key == wanted:
                    envelope: dict[str, Any] = json.loads(record.value)
                    return envelope
