"""The FastStream baseline: the floor's pass-through, written as a FastStream application.

`python -m bench.faststream_app BOOTSTRAP REQUESTS RESULTS GROUP`. A batch subscriber that
commits after each batch (AckPolicy.ACK) and publishes every envelope keyed by its request id,
waiting for the acknowledgements before the batch is acked: the same at-least-once guarantee
as the floor without transactions. Needs the `bench` extra (faststream[kafka]).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.floor import PRODUCER_BATCH_BYTES, passthrough_envelope


def build_app(bootstrap: str, requests: str, results: str, group: str) -> Any:
    from faststream import AckPolicy, FastStream  # noqa: PLC0415 (bench-only dependency)
    from faststream.kafka import KafkaBroker  # noqa: PLC0415

    broker = KafkaBroker(
        bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=PRODUCER_BATCH_BYTES,
    )

    @broker.subscriber(  # type: ignore[untyped-decorator]
        requests,
        group_id=group,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        batch=True,
        max_records=1000,
        batch_timeout_ms=200,
        ack_policy=AckPolicy.ACK,
    )
    async def pass_through(requests_batch: list[dict[str, Any]]) -> None:
        pending = []
        for request in requests_batch:
            envelope = passthrough_envelope(request)
            pending.append(
                await broker.publish(
                    envelope, results, key=str(envelope["request_id"]).encode(), no_confirm=True
                )
            )
        await asyncio.gather(*pending)

    return FastStream(broker)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faststream_app", description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("requests")
    parser.add_argument("results")
    parser.add_argument("group")
    args = parser.parse_args()
    app = build_app(args.bootstrap, args.requests, args.results, args.group)
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
