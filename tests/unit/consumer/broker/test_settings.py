"""consumer/broker/settings.py: the Kafka settings, read alone or as part of EngineSettings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumer.broker.settings import KafkaSettings, describe_settings
from consumer.settings import EngineSettings, IntakeSettings


def test_the_layers_extend_each_other_in_order() -> None:
    kafka = list(KafkaSettings.model_fields)
    intake = list(IntakeSettings.model_fields)
    engine = list(EngineSettings.model_fields)
    assert intake[: len(kafka)] == kafka
    assert engine[: len(intake)] == intake
    assert set(intake) - set(kafka) == {
        "max_record_bytes",
        "max_json_depth",
        "max_params_bytes",
        "reply_topics",
    }


def test_kafka_settings_ignore_what_only_the_engine_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PORT", "not-a-port")
    monkeypatch.setenv("EXECUTION_MAX_JSON_DEPTH", "1")
    monkeypatch.setenv("EXECUTION_RESULTS_TOPIC", "my.results")
    assert KafkaSettings().results_topic == "my.results"
    with pytest.raises(ValidationError, match=r"max_json_depth|EXECUTION_MAX_JSON_DEPTH"):
        IntakeSettings()
    with pytest.raises(ValidationError):
        EngineSettings()


def test_kafka_settings_still_check_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME"):
        KafkaSettings()


def test_the_help_of_a_layer_lists_exactly_its_settings() -> None:
    text = describe_settings(KafkaSettings)
    assert "KAFKA_BOOTSTRAP_SERVERS" in text and "EXECUTION_DEAD_LETTER_TOPIC" in text
    assert "EXECUTION_MAX_RECORD_BYTES" not in text and "SMTP_PORT" not in text
    assert text.count("\n      ") == len(KafkaSettings.model_fields)
