"""Stand-in for HashiCorp Vault (and OpenBao) KV secrets engine version 2, read side.

Answers as Vault documents it: `GET /v1/{mount}/data/{path}` with `X-Vault-Token` returns
`{"data": {"data": {...}, "metadata": {...}}, ...}`; a missing or unknown token is 403
`{"errors": ["permission denied"]}`; a missing secret is 404 `{"errors": []}` (a deleted one is
404 with its metadata); a sealed Vault answers 503 `{"errors": ["Vault is sealed"]}`.

Also as Vault answers: a path under no mount is 404 `{"errors": ["no handler for route ..."]}`;
a KV version 1 mount (`kv1_mounts`) stores `<mount>/<path>`, so a v2-style read of
`<mount>/data/<path>` finds nothing (404, empty errors); `GET /v1/sys/internal/ui/mounts/<mount>`
tells the mount's type and version; `policies` (token -> readable path prefixes) make other
paths 403 "permission denied"; a standby (`redirect_to` set) answers 307 to the active node.
412 and 429 are scripted with `fail_next`.
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
        # KV v2 mounts (any mount a secret was given for is one), and KV v1 mounts.
        self.kv2_mounts: set[str] = {mount for mount, _ in self._secrets} | {"secret"}
        self.kv1_mounts: set[str] = set()
        # token -> the path prefixes (`<mount>/data/<path>`) its policy may read; absent: all.
        self.policies: dict[str, tuple[str, ...]] = {}
        # A standby without request forwarding: every request is redirected there (307).
        self.redirect_to: str | None = None

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
        if self.redirect_to is not None:
            return Response(307, b"", {"Location": self.redirect_to.rstrip("/") + request.path})
        segments = request.path.split("/")
        if segments[:2] != ["", "v1"]:
            return json_response(404, {"errors": []})
        rest = "/".join(unquote(seg) for seg in segments[2:])
        if rest.startswith("sys/internal/ui/mounts/"):
            return self._mount_info(rest.removeprefix("sys/internal/ui/mounts/"))
        mount = next(
            (
                m
                for m in sorted(self.kv2_mounts | self.kv1_mounts, key=len, reverse=True)
                if rest == m or rest.startswith(m + "/")
            ),
            None,
        )
        if mount is None:
            return json_response(
                404, {"errors": [f'no handler for route "{rest}". route entry not found.']}
            )
        allowed = self.policies.get(token)
        if allowed is not None and not any(rest.startswith(prefix) for prefix in allowed):
            return json_response(403, {"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
        if mount in self.kv1_mounts:
            # KV v1 has no `data/` level: the v2-style path names a secret that is not there.
            return json_response(404, {"errors": []})
        inner = rest.removeprefix(mount + "/")
        if not inner.startswith("data/"):
            return json_response(404, {"errors": []})
        key = (mount, inner.removeprefix("data/"))
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

    def _mount_info(self, mount: str) -> Response:
        mount = mount.strip("/")
        if mount in self.kv2_mounts or mount in self.kv1_mounts:
            version = "2" if mount in self.kv2_mounts else "1"
            return json_response(
                200,
                {
                    "data": {
                        "type": "kv",
                        "path": f"{mount}/",
                        "options": {"version": version},
                    }
                },
            )
        return json_response(403, {"errors": ["permission denied"]})
