"""HashiCorp Vault (or OpenBao) KV version 2 as the credential store (`VAULT_BACKEND=hashicorp`).

`GET {VAULT_URL}/v1/{mount}/data/{path}` with `X-Vault-Token`; the secret's fields are in
`data.data`, and one of them (`VAULT_KV_FIELD`, default `token`) is the credential. The path
comes from a template per (project, service), e.g. `puraify/{project}/{service}`.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from urllib.parse import quote

from pydantic import SecretStr

from actions import InvalidParams, MissingCredentials, VaultUnavailable
from actions.base import is_safe_path_segment
from actions.http import HttpClient, HttpError, HttpResponse, HttpTimeout, InvalidRequest
from consumer.credentials.cache import VaultRefused
from consumer.ops.redaction import REDACTOR

_PLACEHOLDERS = {"project", "service"}
_MOUNT = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_TEMPLATE_TEXT = re.compile(r"^[A-Za-z0-9._/{}-]+$")


def check_path_template(template: str) -> str:
    """The template may use `{project}` and `{service}` (both required) and plain segments."""
    if not _TEMPLATE_TEXT.fullmatch(template):
        raise ValueError(f"not a KV path template: {template!r}")
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    if fields != _PLACEHOLDERS:
        raise ValueError("the KV path template must use exactly {project} and {service}")
    if any(part in ("", ".", "..") for part in template.strip("/").split("/")):
        raise ValueError(f"the KV path template has an empty or dot segment: {template!r}")
    return template


def check_mount(mount: str) -> str:
    if not _MOUNT.fullmatch(mount) or any(p in (".", "..") for p in mount.split("/")):
        raise ValueError(f"not a KV mount path: {mount!r}")
    return mount


class HashiCorpVaultClient:
    """One attempt per fetch; the action runner retries `VaultUnavailable` like other failures.

    403 (our token refused) -> `vault_unavailable` at once; 404 -> `missing_credentials`;
    503 (sealed, standby) and other 5xx, 429, timeouts -> retryable `vault_unavailable`.
    """

    def __init__(
        self,
        base_url: str,
        http: HttpClient,
        *,
        mount: str = "secret",
        path_template: str = "puraify/{project}/{service}",
        field: str = "token",
        token: SecretStr | None = None,
        token_file: Path | None = None,
        namespace: str | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._mount = quote(check_mount(mount), safe="/")
        self._template = check_path_template(path_template)
        self._field = field
        self._token = token
        self._token_file = token_file
        self._namespace = namespace
        if token:
            REDACTOR.add(token.get_secret_value())

    def url(self, project: str, service: str) -> str:
        # Both are validated names already; this is the second lock on the path.
        if not (is_safe_path_segment(project) and is_safe_path_segment(service)):
            raise InvalidParams(f"not a valid project/service name: {project!r}/{service!r}")
        path = self._template.format(
            project=quote(project, safe=""), service=quote(service, safe="")
        ).strip("/")
        return f"{self._base_url}/v1/{self._mount}/data/{path}"

    def _client_token(self) -> str:
        """VAULT_TOKEN, or VAULT_TOKEN_FILE read anew each time (an agent may rotate it)."""
        if self._token is not None:
            return self._token.get_secret_value()
        if self._token_file is None:
            raise VaultRefused("no Vault token configured (VAULT_TOKEN or VAULT_TOKEN_FILE)")
        try:
            token = self._token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise VaultUnavailable(f"cannot read VAULT_TOKEN_FILE ({type(exc).__name__})") from None
        if not token:
            raise VaultUnavailable("VAULT_TOKEN_FILE is empty")
        REDACTOR.add(token)
        return token

    async def fetch(self, project: str, service: str) -> SecretStr:
        url = self.url(project, service)
        headers = {"X-Vault-Token": self._client_token()}
        if self._namespace:
            headers["X-Vault-Namespace"] = self._namespace
        try:
            response = await self._http.get(url, headers=headers)
        except HttpTimeout:
            raise VaultUnavailable("the Vault did not answer in time") from None
        except InvalidRequest as exc:  # VAULT_URL or the Vault token unusable: not transient
            raise VaultRefused(f"cannot ask the Vault: {exc.message}") from None
        except HttpError as exc:
            raise VaultUnavailable(f"cannot reach the Vault ({type(exc).__name__})") from None
        status = response.status
        if status == 404:
            raise MissingCredentials(
                f"no {service} credential in the Vault for project {project!r}",
                details={"service": service},
            )
        if status in (401, 403):
            raise VaultRefused(
                f"the Vault refused the engine's token ({status})", details={"status_code": status}
            )
        if status == 503:
            raise VaultUnavailable(
                "the Vault is sealed or unavailable (503)", details={"status_code": status}
            )
        if status != 200:
            error = VaultUnavailable if status >= 500 or status in (412, 429) else VaultRefused
            raise error(f"the Vault answered {status}", details={"status_code": status})
        return self._credential(response, project, service)

    def _credential(self, response: HttpResponse, project: str, service: str) -> SecretStr:
        try:
            fields = response.json()["data"]["data"]
        except (ValueError, KeyError, TypeError):
            raise VaultUnavailable("the Vault answered without KV v2 data") from None
        value = fields.get(self._field) if isinstance(fields, dict) else None
        if not isinstance(value, str) or not value:
            raise MissingCredentials(
                f"the {service} secret of project {project!r} has no {self._field!r} field",
                details={"service": service},
            )
        REDACTOR.add(value)
        return SecretStr(value)
