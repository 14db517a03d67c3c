"""`python -m consumer.localkafka`: a single-node Kafka in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from consumer.localkafka.broker import LocalKafka
from consumer.localkafka.machine import tail
from consumer.localkafka.maven import KAFKA_VERSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.localkafka",
        description="Run a single-node Apache Kafka (KRaft) in the foreground until Ctrl-C.",
    )
    parser.add_argument(
        "--port", type=int, default=9092, help="client port (default 9092; 0 = any free port)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep broker data here across runs (default: a temp dir removed on exit)",
    )
    parser.add_argument("--version", default=KAFKA_VERSION, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    # SIGTERM gets Ctrl-C semantics so `kill <pid>` also stops the broker we started.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    broker = LocalKafka(port=args.port, data_dir=args.data_dir, version=args.version)
    try:
        broker.start()
        print(f"Kafka {broker.version} ready: bootstrap servers {broker.bootstrap_servers}")
        print(f"data: {broker.data_dir}  broker log: {broker.log_file}  (Ctrl-C to stop)")
        sys.stdout.flush()
        while broker.running:
            time.sleep(1.0)
        print(f"broker exited unexpectedly:\n{tail(broker.log_file)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        broker.stop()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
