"""consumer/localkafka/broker.py: ports and addresses of a LocalKafka (no JVM started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.localkafka import LocalKafka, SaslListeners, free_port


def test_a_reused_data_dir_keeps_its_ports_when_they_are_free(tmp_path: Path) -> None:
    plain, controller = free_port(), free_port()
    (tmp_path / "server.properties").write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller}\n",
        encoding="utf-8",
    )
    broker = LocalKafka(data_dir=tmp_path)
    assert (broker.port, broker.controller_port) == (plain, controller)
    assert broker.bootstrap_servers == f"127.0.0.1:{plain}"
    assert not broker.running


def test_sasl_addresses_exist_only_with_their_listeners(tmp_path: Path) -> None:
    plain = LocalKafka(port=0, data_dir=tmp_path / "plain")
    assert plain.port > 0
    with pytest.raises(RuntimeError, match="no SASL listener"):
        _ = plain.sasl_bootstrap_servers
    sasl = LocalKafka(data_dir=tmp_path / "sasl", sasl=SaslListeners({"u": "p"}))
    assert sasl.sasl_bootstrap_servers == f"127.0.0.1:{sasl.sasl_port}"
    with pytest.raises(RuntimeError, match="no SASL_SSL listener"):
        _ = sasl.sasl_ssl_bootstrap_servers
