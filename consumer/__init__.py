"""The runtime: consumes execution requests from Kafka, runs actions, publishes envelopes.

The public names are re-exported here (the subpackages hold one role each: `pipeline`,
`partitions`, `credentials`, `ops`, `broker`, `cli`, `client`, `localkafka`): run an engine
with `Application(EngineSettings()).run(stop)` (the composition root builds the `Engine` and
its parts), or the console command through `main`; a Gateway awaits its envelopes with
`ExecutionClient`.
"""

from consumer.app import Application
from consumer.broker.settings import KafkaSettings
from consumer.cli.main import main
from consumer.client import ExecutionClient, ReplyTimeout
from consumer.engine import Engine
from consumer.localkafka import LocalKafka, kafka_broker
from consumer.pipeline.intake import IntakeLimits
from consumer.settings import EngineSettings, IntakeSettings

__all__ = [
    "Application",
    "Engine",
    "EngineSettings",
    "ExecutionClient",
    "IntakeLimits",
    "IntakeSettings",
    "KafkaSettings",
    "LocalKafka",
    "ReplyTimeout",
    "kafka_broker",
    "main",
]
