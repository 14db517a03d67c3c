"""consumer/localkafka/maven.py: the jars are resolved once, and a missing Maven says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.localkafka.maven import KAFKA_VERSION, ensure_kafka_libs, pom


def test_the_pom_names_the_broker_and_its_log_backend() -> None:
    text = pom("9.9.9")
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>9.9.9</version>" in text
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in text


def test_resolved_jars_are_reused_without_maven(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PURAIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "")  # no mvn: it must not be needed
    root = tmp_path / f"kafka-{KAFKA_VERSION}"
    root.mkdir()
    (root / ".resolved").write_text("1\n", encoding="utf-8")
    assert ensure_kafka_libs(KAFKA_VERSION, log=pytest.fail) == root / "libs"


def test_without_maven_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PURAIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(RuntimeError, match="Maven \\('mvn'\\) is not on PATH"):
        ensure_kafka_libs("0.0.1", log=pytest.fail)
    assert not (tmp_path / "kafka-0.0.1" / ".resolved").exists()
