"""compose.yaml and the Dockerfile, checked without a Docker engine: structure and names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from consumer.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
ENGINE: dict[str, Any] = SERVICES["engine"]
DOCKERFILE = (ROOT / "Dockerfile").read_text("utf-8")
SETTING_NAMES = {
    str(field.json_schema_extra["env"])  # type: ignore[index]
    for field in EngineSettings.model_fields.values()
}
TOPIC_SETTINGS = (
    "EXECUTION_REQUESTS_TOPIC",
    "EXECUTION_RESULTS_TOPIC",
    "EXECUTION_LOGS_TOPIC",
    "EXECUTION_DEAD_LETTER_TOPIC",
)


def test_the_stack_has_kafka_topics_and_the_engine() -> None:
    assert {"kafka", "topic-init", "engine"} <= set(SERVICES)
    kafka = SERVICES["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in SERVICES
    assert "healthcheck" in SERVICES["kafka"]
    assert ENGINE["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["topic-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_engine_environment_uses_only_real_setting_names() -> None:
    environment = ENGINE["environment"]
    assert set(environment) <= SETTING_NAMES, set(environment) - SETTING_NAMES
    assert environment["EXECUTION_CREATE_TOPICS"] == "false"  # topic-init owns the topics
    EngineSettings(**{_field(name): value for name, value in environment.items()})


def _field(env: str) -> str:
    for name, field in EngineSettings.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra["env"] == env:
            return name
    raise KeyError(env)


def test_engine_is_health_checked_on_its_http_port() -> None:
    port = str(ENGINE["environment"]["EXECUTION_HTTP_PORT"])
    check = " ".join(ENGINE["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in check
    assert port in [str(p) for p in ENGINE.get("expose", [])]
    assert "ports" not in ENGINE, "a fixed host port would stop `--scale engine=N`"
    assert "container_name" not in ENGINE, "a fixed name would stop `--scale engine=N`"
    drain = float(ENGINE["environment"]["EXECUTION_DRAIN_TIMEOUT_S"])
    assert int(ENGINE["stop_grace_period"].rstrip("s")) > drain


def test_topic_init_creates_every_engine_topic_with_partitions_and_retention() -> None:
    script = "\n".join(SERVICES["topic-init"]["command"])
    assert "--if-not-exists" in script and "--partitions" in script
    for setting in TOPIC_SETTINGS:
        topic = ENGINE["environment"][setting]
        assert re.search(rf"^create {re.escape(topic)} \d+", script, re.MULTILINE), topic
    assert "retention.ms" in script


def test_dockerfile_is_multi_stage_non_root_and_health_checked() -> None:
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) >= 2
    assert "slim" in DOCKERFILE
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "/healthz" in DOCKERFILE
    assert "COPY --from=build" in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)
