"""The runtime: consumes execution requests from Kafka, runs actions, publishes envelopes.

The public names are re-exported here (the subpackages hold one role each: `pipeline`,
`partitions`, `credentials`, `ops`, `broker`, `cli`, `localkafka`): run an engine with
`Application(EngineSettings()).run(stop)` (the composition root builds the `Engine` and its
parts), or the console command through `main`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumer.app import Application
    from consumer.broker.settings import KafkaSettings
    from consumer.cli.main import main
    from consumer.engine import Engine
    from consumer.localkafka import LocalKafka, kafka_broker
    from consumer.pipeline.intake import IntakeLimits
    from consumer.settings import EngineSettings, IntakeSettings

# Imported when first used: the console command's --help must not load the whole engine.
_HOMES = {
    "Application": "consumer.app",
    "Engine": "consumer.engine",
    "EngineSettings": "consumer.settings",
    "IntakeLimits": "consumer.pipeline.intake",
    "IntakeSettings": "consumer.settings",
    "KafkaSettings": "consumer.broker.settings",
    "LocalKafka": "consumer.localkafka",
    "kafka_broker": "consumer.localkafka",
    "main": "consumer.cli.main",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'consumer' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "Application",
    "Engine",
    "EngineSettings",
    "IntakeLimits",
    "IntakeSettings",
    "KafkaSettings",
    "LocalKafka",
    "kafka_broker",
    "main",
]
