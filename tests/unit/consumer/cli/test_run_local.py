"""`run`'s local broker: where its data is, and `--fresh` (the broker itself not started here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.cli import run as run_command
from consumer.localkafka import LocalKafka
from consumer.settings import EngineSettings


@pytest.mark.parametrize("fresh", [True, False])
def test_fresh_empties_the_local_data_and_the_line_says_where_it_is(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh: bool,
) -> None:
    monkeypatch.setenv("PURAIFY_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr(run_command, "_answers", lambda port: False)
    monkeypatch.setattr(LocalKafka, "start", lambda self, timeout_s=120: None)
    old = tmp_path / "local-run" / "kraft-data" / "old-records"
    old.parent.mkdir(parents=True)
    old.write_text("an hour-old stranger's envelopes")
    with run_command._broker_for_run(EngineSettings(), "auto", fresh=fresh) as bootstrap:
        assert bootstrap == "127.0.0.1:9092"
        assert old.exists() is not fresh
    said = capsys.readouterr().err
    assert f"data in {tmp_path / 'local-run'}" in said
    assert ("(fresh)" if fresh else "`--fresh` starts with none") in said
