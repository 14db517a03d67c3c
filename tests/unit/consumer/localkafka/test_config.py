"""consumer/localkafka/config.py: the broker's server.properties and SASL users."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.localkafka.config import (
    Listeners,
    SaslListeners,
    port_of,
    random_cluster_id,
    read_properties,
    server_properties,
)


def test_plain_broker_has_no_sasl_listener_or_settings() -> None:
    props = server_properties(Listeners(9092, 9093), Path("/data"), None)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert props["log.dirs"] == "/data"
    assert not any(key.startswith(("sasl.", "listener.name.")) for key in props)


def test_sasl_listeners_take_both_mechanisms_for_every_user() -> None:
    sasl = SaslListeners({"alice": "pw-1", "bob": "pw2"}, keystore_pem=Path("/k.pem"))
    props = server_properties(Listeners(1, 2, sasl_plaintext=3, sasl_ssl=4), Path("/d"), sasl)
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:1,SASL_PLAINTEXT://127.0.0.1:3,SASL_SSL://127.0.0.1:4"
    )
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-512"
    for name in ("sasl_plaintext", "sasl_ssl"):
        jaas = props[f"listener.name.{name}.plain.sasl.jaas.config"]
        assert 'user_alice="pw-1"' in jaas and 'user_bob="pw2"' in jaas
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == "/k.pem"
    assert sasl.scram_arguments() == [
        "--add-scram",
        "SCRAM-SHA-512=[name=alice,password=pw-1]",
        "--add-scram",
        "SCRAM-SHA-512=[name=bob,password=pw2]",
    ]


def test_sasl_without_keystore_has_no_ssl_listener_settings() -> None:
    sasl = SaslListeners({"alice": "pw"})
    props = server_properties(Listeners(1, 2, sasl_plaintext=3), Path("/d"), sasl)
    assert "listener.name.sasl_plaintext.plain.sasl.jaas.config" in props
    assert not any(key.startswith("listener.name.sasl_ssl") for key in props)


@pytest.mark.parametrize("user", [{"a b": "pw"}, {"alice": "p=w"}, {"alice": 'p"w'}])
def test_sasl_users_that_would_need_quoting_are_refused(user: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        SaslListeners(user)


def test_cluster_ids_look_like_kafkas_and_never_start_with_a_dash() -> None:
    ids = {random_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(cid) == 22 and not cid.startswith("-") for cid in ids)


def test_read_properties_and_port_of(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    assert read_properties(path) == {}
    path.write_text(
        "# generated\n\nlisteners = PLAINTEXT://127.0.0.1:5001,CONTROLLER://127.0.0.1:5002\n"
        "not a property\n",
        encoding="utf-8",
    )
    listeners = read_properties(path)["listeners"]
    assert read_properties(path) == {"listeners": listeners}
    assert port_of(listeners, "PLAINTEXT") == 5001
    assert port_of(listeners, "CONTROLLER") == 5002
    assert port_of(listeners, "SASL_SSL") is None
