"""consumer/speedups.py: the start-up check for aiokafka's C extensions."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from aiokafka.record import default_records

from consumer.ops.speedups import freeze_startup_objects, speedups, warn_if_slow


class RecordingLog:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))


def test_this_environment_uses_the_compiled_paths() -> None:
    # The suite runs where the engine runs: a pure-Python aiokafka here is a regression.
    assert speedups() == {
        "aiokafka_c_extensions": True,
        "json_c_accelerator": True,
    }


def test_nothing_is_logged_when_everything_is_compiled() -> None:
    log = RecordingLog()
    warn_if_slow(log)  # type: ignore[arg-type]
    assert log.warnings == []


def test_a_pure_python_record_class_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class PurePythonBatch:
        pass

    monkeypatch.setattr(default_records, "DefaultRecordBatch", PurePythonBatch)
    log = RecordingLog()
    found = warn_if_slow(log)  # type: ignore[arg-type]
    assert found["aiokafka_c_extensions"] is False
    assert [event for event, _ in log.warnings] == ["engine.slow_path"]
    assert log.warnings[0][1]["missing"] == ["aiokafka_c_extensions"]


def test_startup_objects_are_frozen_out_of_the_collectors_view() -> None:
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
