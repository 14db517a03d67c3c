"""`execution-engine send`: publish one request; with --wait, print its envelope."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.broker.settings import KafkaClientSettings
from consumer.client import ExecutionClient, ReplyTimeout


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
    envelope = asyncio.run(
        _send_request(
            settings,
            request,
            key=args.key,
            wait=args.wait,
            wait_s=args.timeout,
            reply_topic=args.reply_topic,
        )
    )
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
    *,
    key: str | None,
    wait: bool,
    wait_s: float,
    reply_topic: str | None,
) -> dict[str, Any] | None:
    if not wait:
        producer = AIOKafkaProducer(**settings.kafka_client_options(), enable_idempotence=True)
        try:  # stopped also when starting fails: no "Unclosed AIOKafkaProducer" at exit
            await producer.start()
            await producer.send_and_wait(
                settings.requests_topic,
                json.dumps(request).encode(),
                key=key.encode() if key else None,
            )
        finally:
            await producer.stop()
        return None
    client = ExecutionClient(settings, reply_topic=reply_topic)
    try:
        await client.start()
    except LookupError as exc:  # the topic it reads does not exist
        raise SystemExit(f"execution-engine send: {exc}") from None
    try:
        return await client.execute(
            request["action"],
            request["project"],
            request["params"],
            timeout=wait_s,
            request_id=request["request_id"],
            key=key,
            metadata=request.get("metadata"),
        )
    except ReplyTimeout:
        return None
    finally:
        await client.stop()
