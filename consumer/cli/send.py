"""`execution-engine send`: publish one request; with --wait, print its envelope."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.broker.settings import KafkaSettings
from consumer.cli.command import Commands, add_command
from consumer.client import ExecutionClient, ReplyTimeout


def add_send(commands: Commands) -> None:
    parser = add_command(
        commands,
        "send",
        _send,
        KafkaSettings,
        help="publish one request (and with --wait, print its envelope)",
        description="Publish one execution request. Exit status with --wait: 0 success "
        "envelope, 1 error envelope, 3 no envelope within --timeout.",
    )
    parser.add_argument("action")
    parser.add_argument("--project", required=True)
    parser.add_argument("--params", default="{}", help="JSON object (default {})")
    parser.add_argument("--metadata", default=None, help="JSON object echoed in the envelope")
    parser.add_argument("--request-id", default=None, help="default: a new UUID")
    parser.add_argument("--key", default=None, help="Kafka key (ordering); default: none")
    parser.add_argument("--wait", action="store_true", help="print the envelope")
    parser.add_argument(
        "--reply-topic",
        default=None,
        help="with --wait: the reply topic to await it on (one EXECUTION_REPLY_TOPICS allows); "
        "default: read the results topic",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def _send(args: argparse.Namespace, settings: KafkaSettings) -> int:
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
    settings: KafkaSettings,
    request: dict[str, Any],
    *,
    key: str | None,
    wait: bool,
    wait_s: float,
    reply_topic: str | None,
) -> dict[str, Any] | None:
    if not wait:
        producer = AIOKafkaProducer(**settings.kafka_client_options(), enable_idempotence=True)
        await producer.start()
        try:
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
