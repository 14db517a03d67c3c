"""Stand-in for HashiCorp Vault (and OpenBao) KV secrets engine version 2, read side.

Answers as Vault documents it: `GET /v1/{mount}/data/{path}` with `X-Vault-Token` returns
`{"data": {"data": {...}, "metadata": {...}}, ...}`; a missing or unknown token is 403
`{"errors": ["permission denied"]}`; a missing secret is 404 `{"errors": []}` (a deleted one is
404 with its metadata); a sealed Vault answers 503 `{"errors": ["Vault is sealed"]}`.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import unquote

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

_CREATED = "2026-11-26T08:00:00.000000Z"


class HashiCorpVaultStandIn(StandInServer):
    """KV v2 mounts: `secrets[(mount, path)] = {key: value}`. `tokens`: accepted client tokens
    (X-Vault-Token), each optionally bound to a namespace (`X-Vault-Namespace`)."""

    def __init__(
        self,
        secrets: dict[tuple[str, str], dict[str, Any]] | None = None,
        tokens: set[str] | None = None,
        namespace: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self._secrets: dict[tuple[str, str], dict[str, Any]] = dict(secrets or {})
        self._deleted: set[tuple[str, str]] = set()
        self._versions: dict[tuple[str, str], int] = dict.fromkeys(self._secrets, 1)
        self.tokens: set[str] = set(tokens or ())
        self.namespace = namespace
        self.sealed = False

    def put(self, mount: str, path: str, data: dict[str, Any]) -> None:
        """Write a new version of a secret (as `vault kv put` would)."""
        with self._lock:
            self._secrets[(mount, path)] = dict(data)
            self._deleted.discard((mount, path))
            self._versions[(mount, path)] = self._versions.get((mount, path), 0) + 1

    def delete(self, mount: str, path: str) -> None:
        """Soft-delete the latest version (`vault kv delete`): reads then answer 404."""
        with self._lock:
            self._deleted.add((mount, path))

    def handle(self, request: RecordedRequest) -> Response:
        if self.sealed:
            return json_response(503, {"errors": ["Vault is sealed"]})
        token = request.headers.get("x-vault-token")
        if not token or token not in self.tokens:
            return json_response(403, {"errors": ["permission denied"]})
        if self.namespace is not None and request.headers.get("x-vault-namespace") != (
            self.namespace
        ):
            return json_response(403, {"errors": ["permission denied"]})
        if request.method != "GET":
            return json_response(405, {"errors": []})
        # /v1/<mount>/data/<path>: the mount may have several segments; "data" follows it.
        segments = request.path.split("/")
        if len(segments) < 5 or segments[:2] != ["", "v1"] or "data" not in segments[3:]:
            return json_response(404, {"errors": []})
        marker = segments.index("data", 3)
        mount = "/".join(unquote(s) for s in segments[2:marker])
        path = "/".join(unquote(s) for s in segments[marker + 1 :])
        key = (mount, path)
        with self._lock:
            data = self._secrets.get(key)
            version = self._versions.get(key, 0)
            deleted = key in self._deleted
        if data is None:
            return json_response(404, {"errors": []})
        metadata = {
            "created_time": _CREATED,
            "custom_metadata": None,
            "deletion_time": _CREATED if deleted else "",
            "destroyed": False,
            "version": version,
        }
        if deleted:
            return json_response(404, {"data": {"data": None, "metadata": metadata}})
        return json_response(
            200,
            {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": {"data": dict(data), "metadata": metadata},
                "wrap_info": None,
                "warnings": None,
                "auth": None,
            },
        )
