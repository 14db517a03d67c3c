"""`http_request`: one HTTP call to a URL the request names, through the egress policy."""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import Field, model_validator

from actions.base import Action, ActionContext, ActionParams, ServiceName, upstream_of
from actions.egress import egress_url
from actions.errors import (
    CredentialRejected,
    ForbiddenDestination,
    UpstreamError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.limits import json_depth_exceeds, upstream_json
from actions.request_id_header import request_id_header_value

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Headers the engine owns: a caller setting them could smuggle a second request or a wrong length.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Response headers that are never copied into the envelope.
_HIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization"})

Scalar = str | int | float | bool


class CredentialRef(ActionParams):
    service: ServiceName
    header: str = Field(
        default="Authorization",
        min_length=1,
        max_length=128,
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
    )
    prefix: str = Field(default="Bearer ", max_length=64)


class HttpRequestParams(ActionParams):
    url: str = Field(min_length=1, max_length=8192)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict, max_length=100)
    query: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict, max_length=100)
    json_body: Any = Field(default=None, alias="json", description="A JSON body (not with `body`).")
    body: str | None = Field(default=None, description="A text body (not with `json`).")
    timeout_s: float | None = Field(default=None, gt=0, le=300)
    credential: CredentialRef | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestParams:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError("give `json` or `body`, not both")
        return self


@dataclass
class _Outgoing:
    """The request as it goes out, hop by hop (redirects change method, URL and headers)."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    timeout_s: float
    credential: CredentialRef | None

    def follow(self, status: int, location: str) -> None:
        origin = _origin(self.url)
        self.url = self.url.join(location)
        if self.url.scheme not in ("http", "https"):
            raise ForbiddenDestination(f"redirect to scheme {self.url.scheme!r} refused")
        if _origin(self.url) != origin:
            # Credentials were meant for the first origin only.
            dropped = {"authorization", "cookie", "proxy-authorization"}
            if self.credential is not None:
                dropped.add(self.credential.header.lower())
            self.headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            self.method, self.content = "GET", None
            self.headers = {k: v for k, v in self.headers.items() if k.lower() != "content-type"}


class HttpRequest(Action[HttpRequestParams]):
    name = "http_request"
    params_model = HttpRequestParams
    description = "Makes one HTTP request through the egress policy; non-2xx is an error."

    def upstream(self, params: HttpRequestParams, ctx: ActionContext) -> str | None:
        return upstream_of(params.url)

    async def run(self, params: HttpRequestParams, ctx: ActionContext) -> Mapping[str, Any]:
        outgoing = await self._prepare(params, ctx)
        try:
            async with asyncio.timeout(outgoing.timeout_s):
                return await self._exchange(ctx, outgoing)
        except TimeoutError:
            raise UpstreamUnavailable(
                f"no complete answer within {outgoing.timeout_s:g} s"
            ) from None

    async def _prepare(self, params: HttpRequestParams, ctx: ActionContext) -> _Outgoing:
        # The query is merged with, not instead of, a query string the URL already has.
        url = egress_url(params.url, params.query)
        headers = {k: v for k, v in params.headers.items() if k.lower() not in _RESERVED_HEADERS}
        # Lets the receiver recognise a retry or a replay of the same request.
        headers["Idempotency-Key"] = request_id_header_value(ctx.request_id)
        if params.credential is not None:
            token = await ctx.token(params.credential.service)
            headers[params.credential.header] = params.credential.prefix + token.get_secret_value()
        content: bytes | None = None
        if "json_body" in params.model_fields_set:
            content = jsonlib.dumps(params.json_body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif params.body is not None:
            content = params.body.encode()
        timeout_s = min(
            params.timeout_s or ctx.config.http_default_timeout_s, ctx.config.http_max_timeout_s
        )
        return _Outgoing(params.method, url, headers, content, timeout_s, params.credential)

    async def _exchange(self, ctx: ActionContext, out: _Outgoing) -> dict[str, Any]:
        for _hop in range(ctx.config.http_max_redirects + 1):
            request = ctx.egress_http.build_request(
                out.method, out.url, headers=out.headers, content=out.content, timeout=out.timeout_s
            )
            try:
                response = await ctx.egress_http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise error_for_exception(out.url.host or "destination", exc) from None
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    out.follow(response.status_code, location)
                    continue
                body, truncated = await _read_capped(response, ctx.config.http_max_response_bytes)
            finally:
                await response.aclose()
            return _result(response, body, truncated, out.credential)
        raise UpstreamError(
            f"more than {ctx.config.http_max_redirects} redirects",
            details={"status_code": response.status_code},
        )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """Read at most `cap` bytes: a hostile server must not make us buffer gigabytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _result(
    response: httpx.Response, raw: bytes, truncated: bool, credential: CredentialRef | None
) -> dict[str, Any]:
    body: Any = raw.decode(response.encoding or "utf-8", errors="replace")
    if not truncated and "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError, RecursionError):
            # A lone surrogate (`"\\ud800"`) stays in, escaped: orjson/pydantic cannot render it.
            parsed = upstream_json(raw)
            # Too deep to relay as JSON: keep it as the text it was.
            if not json_depth_exceeds(parsed):
                body = parsed
    headers = {
        k: v for k, v in response.headers.items() if k.lower() not in _HIDDEN_RESPONSE_HEADERS
    }
    if response.status_code == 401 and credential is not None:
        raise CredentialRejected(
            credential.service,
            "the destination rejected the credential",
            details={"status_code": 401},
        )
    error = error_for_status(
        "destination", response, {"body": body[:1000] if isinstance(body, str) else body}
    )
    if error is not None:
        raise error
    data: dict[str, Any] = {"status_code": response.status_code, "headers": headers, "body": body}
    if truncated:
        data["body_truncated"] = True
    return data


ACTION = HttpRequest()
