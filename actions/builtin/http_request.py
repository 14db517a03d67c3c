"""`http_request`: one HTTP call to a URL the request names, through the egress policy.

Retries never repeat an effect on their own: GET, HEAD, PUT, DELETE and OPTIONS are idempotent
(RFC 9110) and retried after a lost answer or a 5xx; POST and PATCH only when the caller says
the target honours the `Idempotency-Key` we send (`honours_idempotency_key: true`). Otherwise a
POST/PATCH whose answer never came (or a 5xx other than 503) ends `outcome_unknown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator
from yarl import URL

from actions.base import Action, ActionContext, ActionParams, ServiceName, upstream_of
from actions.builtin.request_id_header import request_id_header_value
from actions.egress import egress_url, literal_address
from actions.errors import (
    CredentialRejected,
    ForbiddenDestination,
    OutcomeUnknown,
    UpstreamError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.http import HttpError, HttpResponse, HttpTimeout
from actions.limits import json_depth_exceeds, upstream_json
from actions.settings import ActionSettings, setting

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Headers the engine owns: a caller setting them could smuggle a second request or a wrong length.
_RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# Response headers that are never copied into the envelope.
_HIDDEN_RESPONSE_HEADERS = frozenset({"set-cookie", "authorization", "proxy-authorization"})

Scalar = str | int | float | bool
# Below this no call can complete: a shorter timeout would only fail, as the upstream's fault.
MIN_TIMEOUT_S = 0.1


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
    timeout_s: float | None = Field(default=None, ge=MIN_TIMEOUT_S, le=300)
    credential: CredentialRef | None = None
    honours_idempotency_key: bool = Field(
        default=False,
        description="The target de-duplicates by our `Idempotency-Key`: a POST/PATCH may then "
        "be retried after a lost answer like an idempotent method.",
    )

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestParams:
        if "json_body" in self.model_fields_set and self.body is not None:
            raise ValueError("give `json` or `body`, not both")
        return self


@dataclass
class _Outgoing:
    """The request as it goes out, hop by hop (redirects change method, URL and headers)."""

    method: str
    url: URL
    headers: dict[str, str]
    content: bytes | None
    timeout_s: float
    credential: CredentialRef | None
    # Whether sending this request again cannot repeat its effect (see the module docstring).
    idempotent: bool

    def follow(self, status: int, location: str) -> None:
        origin = _origin(self.url)
        try:
            self.url = self.url.join(URL(location))
        except (ValueError, TypeError):
            raise UpstreamError(
                "the destination redirected to a Location that does not parse",
                details={"status_code": status},
            ) from None
        if self.url.scheme in ("http", "https") and not _valid_host(self.url.raw_host):
            raise UpstreamError(
                "the destination redirected to a Location without a valid host",
                details={"status_code": status},
            )
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


class HttpRequestSettings(ActionSettings):
    http_max_response_bytes: int = setting(
        "EXECUTION_HTTP_MAX_RESPONSE_BYTES", 262_144, "`http_request` body cap (decoded).", ge=0
    )
    http_max_content_encodings: int = setting(
        "EXECUTION_HTTP_MAX_CONTENT_ENCODINGS",
        1,
        "Content-encoding layers decoded (`gzip, gzip` is 2); more is refused.",
        ge=0,
        le=4,
    )
    http_max_redirects: int = setting(
        "EXECUTION_HTTP_MAX_REDIRECTS", 5, "Redirects `http_request` follows.", ge=0, le=20
    )
    http_default_timeout_s: float = setting(
        "EXECUTION_HTTP_DEFAULT_TIMEOUT_S",
        10.0,
        "`http_request`'s time limit when the request names none.",
        gt=0,
    )
    http_max_timeout_s: float = setting(
        "EXECUTION_HTTP_MAX_TIMEOUT_S", 60.0, "The longest `timeout_s` a request may ask.", gt=0
    )


class HttpRequest(Action[HttpRequestParams]):
    name = "http_request"
    settings_model = HttpRequestSettings
    params_model = HttpRequestParams
    description = "Makes one HTTP request through the egress policy; non-2xx is an error."

    def upstream(self, params: HttpRequestParams, ctx: ActionContext) -> str | None:
        return upstream_of(params.url)

    async def run(self, params: HttpRequestParams, ctx: ActionContext) -> Mapping[str, Any]:
        outgoing = await self._prepare(params, ctx)
        # One bound for every hop together; each hop gets what is left of it, so the client's
        # own timeout is the one that fires and knows whether the request had gone out.
        deadline = asyncio.get_running_loop().time() + outgoing.timeout_s
        try:
            return await self._exchange(ctx, outgoing, deadline)
        except (TimeoutError, HttpTimeout) as exc:
            message = f"no complete answer within {outgoing.timeout_s:g} s"
            if isinstance(exc, HttpTimeout):
                unsafe = exc.sent and not outgoing.idempotent
            else:
                unsafe = ctx.attempt.unsafe_call_sent
            if unsafe:
                raise OutcomeUnknown(
                    f"{message} after the request was sent; it may have taken effect, so it "
                    "is not repeated"
                ) from None
            raise UpstreamUnavailable(message) from None

    async def _prepare(self, params: HttpRequestParams, ctx: ActionContext) -> _Outgoing:
        # The query is merged with, not instead of, a query string the URL already has.
        url = egress_url(params.url, params.query)
        headers = {k: v for k, v in params.headers.items() if k.lower() not in _RESERVED_HEADERS}
        # Lets the receiver recognise a retry or a replay of the same request.
        headers["Idempotency-Key"] = request_id_header_value(ctx.request_id)
        if params.credential is not None:
            headers[params.credential.header] = await ctx.credential_header(
                params.credential.service, params.credential.prefix
            )
        content: bytes | None = None
        if "json_body" in params.model_fields_set:
            content = jsonlib.dumps(params.json_body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        elif params.body is not None:
            content = params.body.encode()
        settings = ctx.settings.get(HttpRequestSettings)
        timeout_s = min(
            params.timeout_s or settings.http_default_timeout_s, settings.http_max_timeout_s
        )
        idempotent = params.method in IDEMPOTENT_METHODS or params.honours_idempotency_key
        return _Outgoing(
            params.method, url, headers, content, timeout_s, params.credential, idempotent
        )

    async def _exchange(
        self, ctx: ActionContext, out: _Outgoing, deadline: float
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        settings = ctx.settings.get(HttpRequestSettings)
        for _hop in range(settings.http_max_redirects + 1):
            left = deadline - loop.time()
            if left <= 0:
                # The hops before were answered in full; this one never went out.
                raise HttpTimeout("no time left for the next redirect hop", sent=False)
            ctx.attempt.sending(idempotent=out.idempotent)
            try:
                response = await ctx.egress_http.request(
                    out.method,
                    out.url,
                    headers=out.headers,
                    content=out.content,
                    timeout_s=left,
                    max_body_bytes=settings.http_max_response_bytes,
                    max_content_codings=settings.http_max_content_encodings,
                )
            except HttpTimeout:
                raise
            except HttpError as exc:
                raise error_for_exception(
                    out.url.raw_host or "destination", exc, idempotent=out.idempotent
                ) from None
            location = response.headers.get("location")
            if response.status in _REDIRECTS and location:
                out.follow(response.status, location)
                continue
            return _result(response, out)
        raise UpstreamError(
            f"more than {settings.http_max_redirects} redirects",
            details={"status_code": response.status},
        )


def _valid_host(host: str | None) -> bool:
    """A host a URL could name (an IP literal in any spelling, or a DNS name); whether it may
    be reached is the egress policy's question, asked when the hop is sent."""
    if not host:
        return False
    try:
        literal_address(host)
    except ForbiddenDestination:
        return False
    return True


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.raw_host, url.port)


def _result(response: HttpResponse, out: _Outgoing) -> dict[str, Any]:
    body: Any = None
    parsed_json = False
    if not response.truncated and "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError, RecursionError):
            # A lone surrogate (`"\\ud800"`) stays in, escaped: orjson/pydantic cannot render it.
            parsed = upstream_json(response.body)
            # Too deep to relay as JSON: keep it as the text it was.
            if not json_depth_exceeds(parsed):
                body, parsed_json = parsed, True
    if not parsed_json:
        body = response.text()
    headers: dict[str, str] = {}
    for name, value in response.header_items:
        key = name.lower()
        if key not in _HIDDEN_RESPONSE_HEADERS:
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    status = response.status
    if status == 401 and out.credential is not None:
        raise CredentialRejected(
            out.credential.service,
            "the destination rejected the credential",
            details={"status_code": 401},
        )
    if not 200 <= status < 300:  # error_for_status is None for 2xx: no details to build
        error = error_for_status(
            "destination",
            response,
            {"body": body[:1000] if isinstance(body, str) else body},
            idempotent=out.idempotent,
        )
        if error is not None:
            raise error
    data: dict[str, Any] = {"status_code": status, "headers": headers, "body": body}
    if response.truncated:
        data["body_truncated"] = True
    return data


ACTION = HttpRequest()
