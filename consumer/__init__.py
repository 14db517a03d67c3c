"""The runtime: consumes execution requests from Kafka, runs actions, publishes envelopes.

The public names are re-exported here (the subpackages hold one role each: `pipeline`,
`partitions`, `credentials`, `ops`, `broker`, `cli`, `localkafka`): run an engine with
`Engine(EngineSettings()).run(stop)`, or the console command through `main`.
"""

from consumer.broker.settings import KafkaSettings
from consumer.cli.main import main
from consumer.engine import Engine
from consumer.localkafka import LocalKafka, kafka_broker
from consumer.pipeline.intake import IntakeLimits
from consumer.settings import EngineSettings, IntakeSettings

__all__ = [
    "Engine",
    "EngineSettings",
    "IntakeLimits",
    "IntakeSettings",
    "KafkaSettings",
    "LocalKafka",
    "kafka_broker",
    "main",
]
