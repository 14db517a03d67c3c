"""The floor: a minimal raw aiokafka consume -> envelope -> produce loop, committing per batch.

`python -m bench.floor BOOTSTRAP REQUESTS RESULTS GROUP [--transactional]`. It does what the
engine does for a `log_message` request, minus everything that makes the engine an engine
(validation, scheduling, logging, per-partition producers): what is left is the cost of
aiokafka and JSON, i.e. the fastest a Python aiokafka consumer can pass records through.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas import format_timestamp

# The engine's producer tuning (consumer/engine.py), so the baselines differ in code only.
PRODUCER_BATCH_BYTES = 512 * 1024


def passthrough_envelope(request: dict[str, Any]) -> dict[str, Any]:
    """The success envelope of a log_message request (same fields as the engine's)."""
    now = format_timestamp(datetime.now(UTC))
    return {
        "request_id": request.get("request_id"),
        "action": request.get("action"),
        "project": request.get("project"),
        "status": "success",
        "data": {"logged": True},
        "error": None,
        "attempts": 1,
        "started_at": now,
        "finished_at": now,
        "duration_ms": 0.0,
        "metadata": request.get("metadata"),
        "environment": request.get("environment"),
    }


async def run(
    bootstrap: str, requests: str, results: str, group: str, *, transactional: bool
) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(
        requests,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=PRODUCER_BATCH_BYTES,
        transactional_id=f"{group}-floor" if transactional else None,
    )
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            if not batch:
                continue
            if transactional:
                await producer.begin_transaction()
            pending = []
            for records in batch.values():
                for record in records:
                    envelope = passthrough_envelope(json.loads(record.value))
                    pending.append(
                        await producer.send(
                            results,
                            value=json.dumps(envelope, separators=(",", ":")).encode(),
                            key=str(envelope["request_id"]).encode(),
                        )
                    )
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            if transactional:
                await producer.send_offsets_to_transaction(offsets, group)
                await producer.commit_transaction()
            else:
                await asyncio.gather(*pending)
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("requests")
    parser.add_argument("results")
    parser.add_argument("group")
    parser.add_argument("--transactional", action="store_true")
    args = parser.parse_args()
    asyncio.run(
        run(
            args.bootstrap,
            args.requests,
            args.results,
            args.group,
            transactional=args.transactional,
        )
    )


if __name__ == "__main__":
    main()
