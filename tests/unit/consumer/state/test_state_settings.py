"""The fleet-state settings, the store's AUTH and TLS options, and which state an engine gets."""

from __future__ import annotations

import base64
import os
import ssl

import pytest
import structlog
from pydantic import SecretStr, ValidationError

from consumer.ops.metrics import EngineMetrics
from consumer.secrets.redaction import MASK, SECRETS
from consumer.settings import EngineSettings
from consumer.state import InProcessState, ValkeyState, build_state
from consumer.state.remote import connect
from tests.valkey_server import valkey_server

KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


def test_defaults_keep_state_in_process() -> None:
    settings = EngineSettings()
    assert settings.state_url is None
    assert settings.state_timeout_s == 0.25
    assert settings.idempotency_ttl_s == 86_400
    state = build_state(settings, "g", structlog.get_logger(), EngineMetrics())
    assert isinstance(state, InProcessState)
    assert state.rates is None and state.circuits is None


def test_a_store_url_makes_the_state_shared_under_the_group_prefix() -> None:
    settings = EngineSettings(state_url="redis://127.0.0.1:1/0", group_id="billing")
    state = build_state(settings, settings.group_id, structlog.get_logger(), EngineMetrics())
    assert isinstance(state, ValkeyState)
    assert state.remote.key("rate", "x") == "billing:rate:x"
    custom = EngineSettings(state_url="redis://127.0.0.1:1/0", state_prefix="eu")
    assert build_state(custom, "g", structlog.get_logger(), EngineMetrics()).remote.prefix == "eu"  # type: ignore[union-attr]


@pytest.mark.parametrize("url", ["http://user:hunter2secret@host:6379", "valkey://h", "h:6379"])
def test_a_url_that_is_not_redis_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        EngineSettings(state_url=url)
    assert "hunter2secret" not in str(info.value)
    assert "redis://" in str(info.value)


@pytest.mark.parametrize("key", ["short", base64.urlsafe_b64encode(b"x" * 16).decode(), "!!!"])
def test_an_encryption_key_must_be_32_bytes_of_base64(key: str) -> None:
    with pytest.raises(ValidationError, match=r"32 bytes|base64"):
        EngineSettings(state_encryption_key=key)
    assert EngineSettings(state_encryption_key=KEY).state_encryption_key is not None


def test_the_url_password_and_the_setting_password_are_secrets() -> None:
    settings = EngineSettings(state_url="redis://app:url-pass-771@127.0.0.1:6379/0")
    assert "url-pass-771" not in repr(settings)
    connect(
        "redis://app:url-pass-771@127.0.0.1:6379/0",
        username=None,
        password="setting-pass-772",
        ca_file=None,
    )
    text = SECRETS.scrub("url-pass-771 setting-pass-772")
    assert text == f"{MASK} {MASK}"


def test_rediss_verifies_the_server_certificate() -> None:
    client = connect("rediss://127.0.0.1:6380/0", username=None, password=None, ca_file=None)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert kwargs.get("ssl_check_hostname", True) is not False


async def test_auth_by_url_or_by_setting_against_a_password_server() -> None:
    with valkey_server(password="store-pass-9001") as server:
        in_url = f"redis://:store-pass-9001@127.0.0.1:{server.port}/0"
        by_url = connect(in_url, username=None, password=None, ca_file=None)
        assert await by_url.ping()
        by_setting = connect(server.url, username=None, password="store-pass-9001", ca_file=None)
        assert await by_setting.ping()
        wrong = connect(server.url, username=None, password="nope-0000", ca_file=None)
        with pytest.raises(Exception, match=r"(?i)auth|password|invalid"):
            await wrong.ping()
        for client in (by_url, by_setting, wrong):
            await client.aclose()


def test_secret_settings_hold_secretstr() -> None:
    settings = EngineSettings(state_password="pw-123456", state_encryption_key=KEY)
    assert isinstance(settings.state_password, SecretStr)
    assert KEY not in repr(settings)


def test_the_encryption_key_is_registered_as_a_secret() -> None:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    settings = EngineSettings(state_url="redis://127.0.0.1:1/0", state_encryption_key=key)
    build_state(settings, "g", structlog.get_logger(), EngineMetrics())
    assert SECRETS.scrub(f"key={key}") == f"key={MASK}"
