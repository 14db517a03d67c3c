"""Which credential store the engine asks, by `VAULT_BACKEND`: the one place that chooses."""

from __future__ import annotations

from pathlib import Path

from actions.http import HttpClient
from consumer.credentials.cache import Fetch, VaultEngineClient
from consumer.credentials.env import EnvCredentials
from consumer.credentials.hashicorp import HashiCorpVaultClient
from consumer.credentials.settings import CredentialSettings


def credential_fetch(settings: CredentialSettings, http: HttpClient) -> Fetch:
    """The fetch function the credential cache sits in front of."""
    if settings.vault_backend == "hashicorp":
        return HashiCorpVaultClient(
            settings.vault_url,
            http,
            mount=settings.vault_kv_mount,
            path_template=settings.vault_kv_path_template,
            field=settings.vault_kv_field,
            token=settings.vault_token,
            token_file=Path(settings.vault_token_file) if settings.vault_token_file else None,
            namespace=settings.vault_namespace,
        ).fetch
    if settings.vault_backend == "env":
        return EnvCredentials().fetch
    return VaultEngineClient(settings.vault_url, http, settings.vault_token).fetch
