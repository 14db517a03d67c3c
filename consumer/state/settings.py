"""The fleet-state settings (`EXECUTION_STATE_*`, `EXECUTION_IDEMPOTENCY_*`), a part of
`EngineSettings` kept beside the code that uses them."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.broker.settings import env_field as env_setting


def decode_encryption_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("not URL-safe base64") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes (AES-256), got {len(key)}")
    return key


class StateSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    state_url: SecretStr | None = env_setting(
        "EXECUTION_STATE_URL",
        None,
        "Redis/Valkey URL (`redis://` or `rediss://`, user and password may be in it) the "
        "fleet shares rate limits, circuits, idempotency records and (with an encryption key) "
        "the credential cache through; unset: each process keeps its own.",
    )
    state_username: str | None = env_setting(
        "EXECUTION_STATE_USERNAME", None, "Store user (ACL), when not in the URL."
    )
    state_password: SecretStr | None = env_setting(
        "EXECUTION_STATE_PASSWORD", None, "Store password (AUTH), when not in the URL."
    )
    state_ca_file: str | None = env_setting(
        "EXECUTION_STATE_CA_FILE",
        None,
        "CA bundle that signs the store's certificate (`rediss://`; the system's CAs if unset).",
    )
    state_timeout_s: float = env_setting(
        "EXECUTION_STATE_TIMEOUT_S",
        0.25,
        "Longest wait for one store call; past it (or on any error) the engine uses its own "
        "state and retries the store a second later.",
        gt=0,
        le=10,
    )
    state_prefix: str = env_setting(
        "EXECUTION_STATE_PREFIX",
        "",
        "Namespace of every store key (default: `EXECUTION_GROUP_ID`).",
        max_length=200,
    )
    state_encryption_key: SecretStr | None = env_setting(
        "EXECUTION_STATE_ENCRYPTION_KEY",
        None,
        "32 bytes, URL-safe base64: credentials are cached in the store, AES-GCM encrypted; "
        "unset: never in the store.",
    )
    idempotency_ttl_s: float = env_setting(
        "EXECUTION_IDEMPOTENCY_TTL_S",
        86_400.0,
        "How long a request_id that succeeded is remembered (a repeat is not executed).",
        gt=0,
    )
    idempotency_lease_s: float = env_setting(
        "EXECUTION_IDEMPOTENCY_LEASE_S",
        10.0,
        "How long a running request holds its request_id: a duplicate arriving meanwhile "
        "waits up to this long for its outcome.",
        gt=0,
    )
    idempotency_max_entries: int = env_setting(
        "EXECUTION_IDEMPOTENCY_MAX_ENTRIES",
        100_000,
        "Succeeded request_ids remembered in process (LRU; also bounded to 64 MiB of data).",
        ge=1,
    )

    @field_validator("state_url")
    @classmethod
    def _valid_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("redis", "rediss"):
            # Never echo the URL: it may hold a password.
            raise ValueError(f"must be a redis:// or rediss:// URL (got scheme {scheme!r})")
        return value

    @field_validator("state_encryption_key")
    @classmethod
    def _valid_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        decode_encryption_key(value.get_secret_value())
        return value

    @field_validator("state_ca_file")
    @classmethod
    def _readable_ca_file(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value
