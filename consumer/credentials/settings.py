"""The settings the credential backends and cache read (`VAULT_*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.broker.settings import env_field as _env
from consumer.credentials.hashicorp import check_mount, check_path_template


class CredentialSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )
    vault_backend: Literal["engine", "hashicorp", "env"] = _env(
        "VAULT_BACKEND",
        "engine",
        "Credential store: `engine` (the PURAIFY Vault Engine), `hashicorp` (HashiCorp Vault or "
        "OpenBao KV v2), `env` (`PURAIFY_CRED_<PROJECT>__<SERVICE>` variables, local use).",
    )
    vault_url: str = _env(
        "VAULT_URL", "http://localhost:8200", "Vault Engine (or HashiCorp Vault) base URL."
    )
    vault_token: SecretStr | None = _env(
        "VAULT_TOKEN",
        None,
        "The engine's own Vault token: `Authorization: Bearer` to the Vault Engine, "
        "`X-Vault-Token` to HashiCorp Vault.",
    )
    vault_token_file: str | None = _env(
        "VAULT_TOKEN_FILE",
        None,
        "hashicorp: file holding the token (read at each fetch, e.g. a Vault Agent sink), "
        "when `VAULT_TOKEN` is unset.",
    )
    vault_kv_mount: str = _env(
        "VAULT_KV_MOUNT", "secret", "hashicorp: mount path of the KV v2 secrets engine."
    )
    vault_kv_path_template: str = _env(
        "VAULT_KV_PATH_TEMPLATE",
        "puraify/{project}/{service}",
        "hashicorp: secret path per (project, service) under the mount.",
    )
    vault_kv_field: str = _env(
        "VAULT_KV_FIELD",
        "token",
        "hashicorp: the field of the secret's `data.data` that holds the credential.",
        min_length=1,
    )
    vault_namespace: str | None = _env(
        "VAULT_NAMESPACE",
        None,
        "hashicorp: sent as `X-Vault-Namespace` (Vault Enterprise / OpenBao namespaces).",
    )
    vault_timeout_s: float = _env("VAULT_TIMEOUT_S", 5.0, "Vault request timeout.", gt=0)
    vault_cache_ttl_s: float = _env(
        "VAULT_CACHE_TTL_S", 300.0, "How long a fetched credential is reused.", ge=0
    )
    vault_cache_max_entries: int = _env(
        "VAULT_CACHE_MAX_ENTRIES", 10_000, "Credential cache size (least recently used out).", ge=1
    )

    @field_validator("vault_kv_mount")
    @classmethod
    def _valid_mount(cls, value: str) -> str:
        return check_mount(value)

    @field_validator("vault_kv_path_template")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        return check_path_template(value)

    @model_validator(mode="after")
    def _hashicorp_needs_a_token(self) -> CredentialSettings:
        if self.vault_backend == "hashicorp" and not (self.vault_token or self.vault_token_file):
            raise ValueError("VAULT_BACKEND=hashicorp needs VAULT_TOKEN or VAULT_TOKEN_FILE")
        return self
