"""Stand-in for the PURAIFY Vault Engine's token endpoint."""

from __future__ import annotations

from urllib.parse import unquote

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

_PREFIX = ("", "vault", "token")


class VaultStandIn(StandInServer):
    """``GET /vault/token/{project}/{service}`` -> ``{"token": ...}``.

    ``required_bearer``: when set, requests must carry ``Authorization: Bearer <it>`` or get 401
    (the engine authenticates to the Vault with its own service token).
    """

    def __init__(
        self,
        tokens: dict[tuple[str, str], str] | None = None,
        required_bearer: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self._tokens: dict[tuple[str, str], str] = dict(tokens or {})
        self.required_bearer = required_bearer

    def set_token(self, project: str, service: str, token: str) -> None:
        """Add or rotate a secret; the next fetch sees the new value."""
        with self._lock:
            self._tokens[(project, service)] = token

    def remove_token(self, project: str, service: str) -> None:
        with self._lock:
            self._tokens.pop((project, service), None)

    @property
    def tokens(self) -> dict[tuple[str, str], str]:
        with self._lock:
            return dict(self._tokens)

    def handle(self, request: RecordedRequest) -> Response:
        segments = request.path.split("/")
        # Only the one documented route exists; any other path or verb is a plain 404.
        if (
            request.method not in ("GET", "HEAD")
            or len(segments) != 5
            or tuple(segments[:3]) != _PREFIX
            or not segments[3]
            or not segments[4]
        ):
            return json_response(404, {"error": "not found"})
        if self.required_bearer is not None and request.bearer_token() != self.required_bearer:
            return json_response(
                401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Bearer realm="vault"'}
            )
        # Path segments arrive percent-encoded; project/service names may contain e.g. spaces.
        project, service = unquote(segments[3]), unquote(segments[4])
        with self._lock:
            token = self._tokens.get((project, service))
        if token is None:
            return json_response(404, {"error": "not found"})
        return json_response(200, {"token": token})
