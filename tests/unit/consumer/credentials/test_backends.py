"""Credential backends besides the Vault Engine: HashiCorp Vault / OpenBao KV v2 over real
loopback HTTP (the stand-in answers as Vault documents), and environment variables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from actions import ActionError, InvalidParams, MissingCredentials
from actions.errors import VaultUnavailable
from actions.http import HttpClient
from consumer.credentials.backends import credential_fetch
from consumer.credentials.cache import VaultEngineClient, VaultRefused
from consumer.credentials.env import EnvCredentials, variable_name
from consumer.credentials.hashicorp import (
    HashiCorpVaultClient,
    check_mount,
    check_path_template,
)
from consumer.secrets.redaction import SECRETS
from consumer.settings import EngineSettings
from schemas import ErrorCode
from tests.standins import HashiCorpVaultStandIn
from tests.unit.support import closed_port, plain_client

CLIENT_TOKEN = "hvs.engine-client-token-0001"
SLACK_TOKEN = "xoxb-from-kv-0001"


@pytest.fixture
def kv() -> Iterator[HashiCorpVaultStandIn]:
    secrets = {("secret", "puraify/proj-a/slack"): {"token": SLACK_TOKEN, "team": "T1"}}
    with HashiCorpVaultStandIn(secrets, tokens={CLIENT_TOKEN}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client(timeout=2.0) as client:
        yield client


def client(kv_url: str, http: HttpClient, **options: object) -> HashiCorpVaultClient:
    options.setdefault("token", SecretStr(CLIENT_TOKEN))
    return HashiCorpVaultClient(kv_url, http, **options)  # type: ignore[arg-type]


async def test_kv_v2_read_parses_data_data(kv: HashiCorpVaultStandIn, http: HttpClient) -> None:
    secret = await client(kv.base_url, http).fetch("proj-a", "slack")
    assert secret.get_secret_value() == SLACK_TOKEN
    (request,) = kv.requests
    assert request.method == "GET"
    assert request.path == "/v1/secret/data/puraify/proj-a/slack"
    assert request.headers["x-vault-token"] == CLIENT_TOKEN
    assert "authorization" not in request.headers
    # The engine's own token is scrubbed everywhere; a tenant's value only from the outputs of
    # the records that used it (the cache's record view adds it to their scope).
    assert SECRETS.scrub(f"x {CLIENT_TOKEN} y") == "x [REDACTED] y"
    assert SECRETS.scrub(f"x {SLACK_TOKEN} y") == f"x {SLACK_TOKEN} y"


async def test_mount_template_field_and_namespace_are_settings(
    http: HttpClient,
) -> None:
    secrets = {("kv/apps", "tenants/proj-b/google_sheets/cred"): {"access_token": "ya29.kv"}}
    with HashiCorpVaultStandIn(secrets, tokens={CLIENT_TOKEN}, namespace="team-a") as kv:
        fetch = client(
            kv.base_url,
            http,
            mount="kv/apps",
            path_template="tenants/{project}/{service}/cred",
            field="access_token",
            namespace="team-a",
        ).fetch
        assert (await fetch("proj-b", "google_sheets")).get_secret_value() == "ya29.kv"
        assert kv.requests[0].path == "/v1/kv/apps/data/tenants/proj-b/google_sheets/cred"
        assert kv.requests[0].headers["x-vault-namespace"] == "team-a"


async def test_403_is_our_token_refused_and_retried_like_any_vault_unavailable(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    with pytest.raises(VaultRefused) as info:
        await client(kv.base_url, http, token=SecretStr("hvs.wrong")).fetch("proj-a", "slack")
    assert info.value.code is ErrorCode.VAULT_UNAVAILABLE and info.value.code.retryable
    # The envelope says retryable, so the runner retries it too: a rotated VAULT_TOKEN_FILE
    # is read anew on the next attempt.
    assert isinstance(info.value, VaultUnavailable)
    assert info.value.details == {"status_code": 403}
    assert "permission denied" in info.value.message and "policy" in info.value.message
    assert "hvs.wrong" not in info.value.message


async def test_404_is_missing_credentials(kv: HashiCorpVaultStandIn, http: HttpClient) -> None:
    with pytest.raises(MissingCredentials) as info:
        await client(kv.base_url, http).fetch("proj-a", "notion")
    assert info.value.code is ErrorCode.MISSING_CREDENTIALS
    assert info.value.details == {"service": "notion"}


async def test_a_deleted_secret_is_missing(kv: HashiCorpVaultStandIn, http: HttpClient) -> None:
    kv.delete("secret", "puraify/proj-a/slack")
    with pytest.raises(MissingCredentials):
        await client(kv.base_url, http).fetch("proj-a", "slack")


async def test_a_secret_without_the_field_is_missing(http: HttpClient) -> None:
    secrets = {("secret", "puraify/proj-a/slack"): {"password": "x"}}
    with (
        HashiCorpVaultStandIn(secrets, tokens={CLIENT_TOKEN}) as kv,
        pytest.raises(MissingCredentials, match="no 'token' field"),
    ):
        await client(kv.base_url, http).fetch("proj-a", "slack")


async def test_sealed_503_is_retryable(kv: HashiCorpVaultStandIn, http: HttpClient) -> None:
    kv.sealed = True
    with pytest.raises(VaultUnavailable) as info:
        await client(kv.base_url, http).fetch("proj-a", "slack")
    assert info.value.code is ErrorCode.VAULT_UNAVAILABLE and info.value.code.retryable
    assert "sealed" in info.value.message
    kv.sealed = False
    assert (await client(kv.base_url, http).fetch("proj-a", "slack")).get_secret_value()


@pytest.mark.parametrize("status", [500, 429, 412, 400])
async def test_other_statuses_are_vault_unavailable_and_retried(
    kv: HashiCorpVaultStandIn, http: HttpClient, status: int
) -> None:
    kv.fail_next(1, status, body={"errors": ["x"]})
    with pytest.raises(ActionError) as info:
        await client(kv.base_url, http).fetch("proj-a", "slack")
    assert info.value.code is ErrorCode.VAULT_UNAVAILABLE
    assert isinstance(info.value, VaultUnavailable)
    assert f"answered {status}: x" in info.value.message


async def test_connection_refused_is_retryable(http: HttpClient) -> None:
    with pytest.raises(VaultUnavailable, match="cannot reach"):
        await client(f"http://127.0.0.1:{closed_port()}", http).fetch("proj-a", "slack")


async def test_token_file_is_read_at_each_fetch(
    kv: HashiCorpVaultStandIn, http: HttpClient, tmp_path: Path
) -> None:
    token_file = tmp_path / "vault-token"
    token_file.write_text("hvs.first\n")
    kv.tokens = {"hvs.first"}
    fetch = client(kv.base_url, http, token=None, token_file=token_file).fetch
    assert (await fetch("proj-a", "slack")).get_secret_value() == SLACK_TOKEN
    token_file.write_text("hvs.rotated")  # an agent rotated it
    kv.tokens = {"hvs.rotated"}
    assert (await fetch("proj-a", "slack")).get_secret_value() == SLACK_TOKEN
    assert [r.headers["x-vault-token"] for r in kv.requests] == ["hvs.first", "hvs.rotated"]
    token_file.unlink()
    with pytest.raises(VaultUnavailable, match="VAULT_TOKEN_FILE"):
        await fetch("proj-a", "slack")


@pytest.mark.parametrize(("project", "service"), [("..", "slack"), ("a/b", "slack"), ("p", "..")])
async def test_names_are_checked_before_they_reach_the_path(
    kv: HashiCorpVaultStandIn, http: HttpClient, project: str, service: str
) -> None:
    with pytest.raises(InvalidParams):
        await client(kv.base_url, http).fetch(project, service)
    assert kv.requests == []


@pytest.mark.parametrize(
    "template",
    ["puraify/{project}", "{project}/{service}/{other}", "a/../{project}/{service}", "{0}/{1}"],
)
def test_bad_path_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        check_path_template(template)


@pytest.mark.parametrize("mount", ["", "/secret", "a/../b", "se cret"])
def test_bad_mounts_are_refused(mount: str) -> None:
    with pytest.raises(ValueError, match="mount"):
        check_mount(mount)


def test_variable_names() -> None:
    assert variable_name("demo-project", "slack") == "PURAIFY_CRED_DEMO_2DPROJECT__SLACK"
    assert variable_name("a.b", "google_sheets") == "PURAIFY_CRED_A_2EB__GOOGLE_5FSHEETS"


async def test_env_backend() -> None:
    secret = f"xoxb-env-{uuid.uuid4().hex}"
    env = EnvCredentials({"PURAIFY_CRED_DEMO_2DPROJECT__SLACK": secret})
    assert (await env.fetch("demo-project", "slack")).get_secret_value() == secret
    assert SECRETS.scrub(secret) == secret  # scoped per record, not process-wide
    with pytest.raises(MissingCredentials, match="PURAIFY_CRED_DEMO_2DPROJECT__NOTION"):
        await env.fetch("demo-project", "notion")
    with pytest.raises(MissingCredentials):
        await EnvCredentials({"PURAIFY_CRED_DEMO_2DPROJECT__SLACK": ""}).fetch(
            "demo-project", "slack"
        )
    with pytest.raises(InvalidParams):
        await env.fetch("..", "slack")


async def test_env_backend_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PURAIFY_CRED_P1__SLACK", "xoxb-from-process-env")
    assert (await EnvCredentials().fetch("p1", "slack")).get_secret_value() == (
        "xoxb-from-process-env"
    )


def settings(**values: object) -> EngineSettings:
    return EngineSettings(**values)  # type: ignore[arg-type]


async def test_the_backend_is_chosen_by_setting(
    kv: HashiCorpVaultStandIn, http: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = credential_fetch(settings(), http)
    assert isinstance(getattr(engine, "__self__", None), VaultEngineClient)
    hashicorp = credential_fetch(
        settings(vault_backend="hashicorp", vault_url=kv.base_url, vault_token=CLIENT_TOKEN), http
    )
    assert (await hashicorp("proj-a", "slack")).get_secret_value() == SLACK_TOKEN
    monkeypatch.setenv("PURAIFY_CRED_PROJ_2DA__SLACK", "xoxb-env")
    env = credential_fetch(settings(vault_backend="env"), http)
    assert (await env("proj-a", "slack")).get_secret_value() == "xoxb-env"


def test_hashicorp_settings_are_checked_at_start_up() -> None:
    with pytest.raises(ValidationError, match="VAULT_TOKEN or VAULT_TOKEN_FILE"):
        settings(vault_backend="hashicorp")
    with pytest.raises(ValidationError, match="template"):
        settings(vault_backend="env", vault_kv_path_template="x/{project}")
    with pytest.raises(ValidationError, match="mount"):
        settings(vault_backend="env", vault_kv_mount="../x")
    assert settings(vault_backend="hashicorp", vault_token_file="/run/token").vault_token is None
