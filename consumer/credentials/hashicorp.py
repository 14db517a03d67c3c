"""HashiCorp Vault (or OpenBao) KV version 2 as the credential store (`VAULT_BACKEND=hashicorp`).

`GET {VAULT_URL}/v1/{mount}/data/{path}` with `X-Vault-Token`; the secret's fields are in
`data.data`, and one of them (`VAULT_KV_FIELD`, default `token`) is the credential. The path
comes from a template per (project, service), e.g. `puraify/{project}/{service}`.

A 404 is "no such secret" only when Vault says so (empty `errors`, or a deleted version's
metadata) on a KV v2 mount; "no handler for route" (no such mount) and a KV v1 mount are
configuration errors (`vault_unavailable`), named as such. A standby's 307 is followed to the
active node.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from urllib.parse import quote

from pydantic import SecretStr
from yarl import URL

from actions import InvalidParams, MissingCredentials
from actions.base import is_safe_path_segment
from actions.errors import VaultUnavailable, parse_retry_after
from actions.http import HttpClient, HttpError, HttpResponse, HttpTimeout, InvalidRequest
from consumer.credentials.cache import VaultRefused
from consumer.secrets.redaction import SECRETS

_PLACEHOLDERS = {"project", "service"}
_MOUNT = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_TEMPLATE_TEXT = re.compile(r"^[A-Za-z0-9._/{}-]+$")
# A standby node without request forwarding redirects to the active node: a few hops at most.
_MAX_REDIRECTS = 3


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

    404 with no errors on a KV v2 mount -> `missing_credentials`; 401/403 (token refused or
    policy denies the path), a missing mount, a KV v1 mount, 412, 429, 5xx (503: sealed),
    timeouts -> `vault_unavailable` (retryable); 307 from a standby -> followed.
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
        # True once Vault said the mount is KV version 2 (asked on a "not found"; None: not yet).
        self._mount_is_kv2: bool | None = None
        if token:
            SECRETS.add_engine_secret(token.get_secret_value())

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
        SECRETS.add_engine_secret(token)
        return token

    async def fetch(self, project: str, service: str) -> SecretStr:
        url = self.url(project, service)
        headers = {"X-Vault-Token": self._client_token()}
        if self._namespace:
            headers["X-Vault-Namespace"] = self._namespace
        response = await self._get(url, headers)
        status = response.status
        if status == 200:
            return self._credential(response, project, service)
        errors = _errors(response)
        if status == 404:
            raise await self._not_found(response, errors, headers, project, service)
        said = f": {errors[0][:200]}" if errors else ""
        if status in (401, 403):
            raise VaultRefused(
                f"the Vault refused to read the {service} secret of project {project!r} "
                f"({status}{said}): the engine's token is invalid or its policy does not allow "
                "`read` on the path",
                details={"status_code": status},
            )
        if status == 503:
            raise VaultUnavailable(
                "the Vault is sealed or unavailable (503)", details={"status_code": status}
            )
        if status >= 500 or status in (412, 429):
            raise VaultUnavailable(
                f"the Vault answered {status}{said}",
                details={"status_code": status},
                retry_after_s=parse_retry_after(response.headers.get("retry-after")),
            )
        raise VaultRefused(f"the Vault answered {status}{said}", details={"status_code": status})

    async def _get(self, url: str, headers: dict[str, str]) -> HttpResponse:
        """GET, following a standby's redirect to the active node (with the same headers, as
        Vault's own clients do)."""
        target = URL(url)
        for _hop in range(_MAX_REDIRECTS + 1):
            try:
                response = await self._http.get(target, headers=headers)
            except HttpTimeout:
                raise VaultUnavailable("the Vault did not answer in time") from None
            except InvalidRequest as exc:  # VAULT_URL or the Vault token unusable
                raise VaultRefused(f"cannot ask the Vault: {exc.message}") from None
            except HttpError as exc:
                raise VaultUnavailable(f"cannot reach the Vault ({type(exc).__name__})") from None
            location = response.headers.get("location")
            if response.status not in (307, 308) or not location:
                return response
            target = target.join(URL(location))
            if target.scheme not in ("http", "https"):
                break
        raise VaultUnavailable(
            "the Vault kept redirecting (standby without an active node?)",
            details={"status_code": response.status},
        )

    async def _not_found(
        self,
        response: HttpResponse,
        errors: list[str],
        headers: dict[str, str],
        project: str,
        service: str,
    ) -> VaultUnavailable | MissingCredentials:
        if errors:
            # "no handler for route ...": there is no such mount (or no KV engine at it).
            return VaultUnavailable(
                f"the Vault has no KV mount {self._mount!r} (VAULT_KV_MOUNT): {errors[0][:200]}",
                details={"status_code": 404},
            )
        if not _is_deleted_version(response) and not await self._kv2(headers):
            return VaultUnavailable(
                f"the Vault mount {self._mount!r} is not KV version 2 (VAULT_KV_MOUNT); the "
                "engine reads `<mount>/data/<path>` as KV v2 does",
                details={"status_code": 404},
            )
        return MissingCredentials(
            f"no {service} credential in the Vault for project {project!r}",
            details={"service": service},
        )

    async def _kv2(self, headers: dict[str, str]) -> bool:
        """Whether the mount is KV v2 (`sys/internal/ui/mounts`, asked until it says yes). When
        Vault will not say, it is taken to be v2: the 404 then means what it says."""
        if self._mount_is_kv2 is not None:
            return self._mount_is_kv2
        try:
            response = await self._get(
                f"{self._base_url}/v1/sys/internal/ui/mounts/{self._mount}", headers
            )
            mount = response.json()["data"] if response.status == 200 else None
        except (VaultUnavailable, ValueError, KeyError, TypeError):
            return True
        if not isinstance(mount, dict):
            return True
        options = mount.get("options") if isinstance(mount.get("options"), dict) else {}
        is_kv2 = (
            mount.get("type") in ("kv", "generic")
            and str((options or {}).get("version", "1")) == "2"
        )
        # Only "yes" is remembered: a mount upgraded to v2 later is seen without a restart.
        if is_kv2:
            self._mount_is_kv2 = True
        return is_kv2

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
        return SecretStr(value)


def _errors(response: HttpResponse) -> list[str]:
    """Vault's `{"errors": [...]}`, as strings (empty when absent or not JSON)."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return []
    return [str(e) for e in errors] if isinstance(errors, list) else []


def _is_deleted_version(response: HttpResponse) -> bool:
    """KV v2 answers a deleted or destroyed latest version with 404 and its metadata."""
    try:
        metadata = response.json()["data"]["metadata"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(metadata, dict)
