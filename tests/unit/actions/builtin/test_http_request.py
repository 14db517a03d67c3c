"""actions/builtin/http_request.py against two loopback HTTP targets (different origins)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from actions import RateLimited, UpstreamError, UpstreamUnavailable
from actions.builtin.http_request import ACTION, HttpRequestParams, HttpRequestSettings
from actions.egress import EgressPolicy, guarded_client, parse_networks
from actions.errors import CredentialRejected, ForbiddenDestination
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from actions.settings import ActionSettingsSet
from schemas import ErrorCode, ExecutionRequest, success_envelope
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, FakeHttpClient, action_settings, make_context

CREDENTIAL = {"service": "target", "header": "X-Api-Key", "prefix": "Key "}
TOKEN = "token-demo-project-target"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HttpTargetStandIn, HttpTargetStandIn]]:
    with HttpTargetStandIn() as first, HttpTargetStandIn() as second:
        yield first, second


@pytest.fixture
def target(servers: tuple[HttpTargetStandIn, HttpTargetStandIn]) -> HttpTargetStandIn:
    for server in servers:
        server.clear()
    return servers[0]


@pytest.fixture
def other(servers: tuple[HttpTargetStandIn, HttpTargetStandIn]) -> HttpTargetStandIn:
    return servers[1]


@pytest.fixture
async def trusted() -> AsyncIterator[HttpClient]:
    # `http` must not be used by http_request: a trusted client that fails the test if called.
    async with FakeHttpClient() as client:
        yield client


async def run(
    trusted: HttpClient,
    egress: HttpClient,
    settings: ActionSettingsSet | None = None,
    credentials: FakeCredentials | None = None,
    **fields: Any,
) -> dict[str, Any]:
    ctx = make_context(
        http=trusted,
        egress_http=egress,
        settings=settings,
        credentials=credentials,
        request_id="req-42",
    )
    return dict(await ACTION.run(HttpRequestParams.model_validate(fields), ctx))


async def test_method_query_json_and_headers_reach_the_target(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(
        trusted,
        egress,
        url=f"{target.base_url}/echo",
        method="PUT",
        query={"a": "1", "b": [2, 3], "c": True},
        json={"k": ["v", 1, None]},
        headers={"X-Custom": "yes"},
    )
    assert data["status_code"] == 200
    echo = data["body"]
    assert echo["method"] == "PUT"
    assert echo["query"] == {"a": ["1"], "b": ["2", "3"], "c": ["true"]}
    assert echo["json"] == {"k": ["v", 1, None]}
    assert echo["headers"]["x-custom"] == "yes"
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["idempotency-key"] == "req-42"
    assert "x-api-key" not in echo["headers"]
    assert data["headers"]["content-type"].startswith("application/json")
    assert "body_truncated" not in data


async def test_default_method_is_get_and_text_body_is_sent(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    got = await run(trusted, egress, url=f"{target.base_url}/echo")
    assert got["body"]["method"] == "GET"
    posted = await run(trusted, egress, url=f"{target.base_url}/echo", method="POST", body="plain")
    assert posted["body"]["body"] == "plain"


async def test_query_string_of_the_url_is_kept(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(trusted, egress, url=f"{target.base_url}/echo?page=2&size=10")
    assert data["body"]["query"] == {"page": ["2"], "size": ["10"]}


async def test_query_string_of_the_url_is_merged_with_query(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(trusted, egress, url=f"{target.base_url}/echo?page=2", query={"q": "x"})
    assert data["body"]["query"] == {"page": ["2"], "q": ["x"]}


async def test_reserved_headers_are_not_forwarded(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(
        trusted,
        egress,
        url=f"{target.base_url}/echo",
        method="POST",
        body="abc",
        headers={"Host": "evil.test", "Content-Length": "999", "Transfer-Encoding": "chunked"},
    )
    echo = data["body"]
    assert echo["headers"]["host"] == f"127.0.0.1:{target.port}"
    assert echo["headers"]["content-length"] == "3"
    assert "transfer-encoding" not in echo["headers"]
    assert echo["body"] == "abc"


async def test_credential_header_with_prefix(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    credentials = FakeCredentials()
    data = await run(
        trusted,
        egress,
        credentials=credentials,
        url=f"{target.base_url}/echo",
        credential=CREDENTIAL,
    )
    assert data["body"]["headers"]["x-api-key"] == f"Key {TOKEN}"
    assert credentials.gets == [("demo-project", "target")]


async def test_credential_defaults_to_authorization_bearer(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(
        trusted, egress, url=f"{target.base_url}/echo", credential={"service": "target"}
    )
    assert data["body"]["headers"]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (400, UpstreamError, ErrorCode.UPSTREAM_ERROR),
        (404, UpstreamError, ErrorCode.UPSTREAM_ERROR),
        (409, UpstreamError, ErrorCode.UPSTREAM_ERROR),
        (500, UpstreamUnavailable, ErrorCode.UPSTREAM_UNAVAILABLE),
        (503, UpstreamUnavailable, ErrorCode.UPSTREAM_UNAVAILABLE),
    ],
)
async def test_non_2xx_is_an_error_with_the_status(
    target: HttpTargetStandIn,
    trusted: HttpClient,
    egress: HttpClient,
    status: int,
    error: type[Exception],
    code: ErrorCode,
) -> None:
    with pytest.raises(error) as info:
        await run(trusted, egress, url=f"{target.base_url}/status/{status}")
    assert isinstance(info.value, UpstreamError | UpstreamUnavailable)
    assert info.value.code is code
    assert info.value.details == {"status_code": status, "body": {"status": status}}


async def test_429_is_rate_limited(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 429, headers={"Retry-After": "3"})
    with pytest.raises(RateLimited) as info:
        await run(trusted, egress, url=f"{target.base_url}/echo")
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.retry_after_s == 3.0
    assert info.value.details is not None and info.value.details["status_code"] == 429


async def test_error_with_a_scalar_json_body_is_classified(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 400, headers={"Content-Type": "application/json"}, body=b"null")
    with pytest.raises(UpstreamError) as info:
        await run(trusted, egress, url=f"{target.base_url}/echo")
    assert info.value.details is not None
    assert info.value.details["status_code"] == 400


@pytest.mark.parametrize(("raw", "value"), [(b"true", True), (b"42", 42)])
async def test_success_with_a_scalar_json_body(
    target: HttpTargetStandIn,
    trusted: HttpClient,
    egress: HttpClient,
    raw: bytes,
    value: object,
) -> None:
    target.fail_next(1, 200, headers={"Content-Type": "application/json"}, body=raw)
    data = await run(trusted, egress, url=f"{target.base_url}/echo")
    assert data["status_code"] == 200
    assert data["body"] == value


async def test_401_with_a_credential_is_credential_rejected(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 401)
    with pytest.raises(CredentialRejected) as info:
        await run(trusted, egress, url=f"{target.base_url}/echo", credential=CREDENTIAL)
    assert info.value.service == "target"


async def test_401_without_a_credential_is_upstream_error(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 401)
    with pytest.raises(UpstreamError):
        await run(trusted, egress, url=f"{target.base_url}/echo")


async def test_redirect_to_another_origin_drops_the_credential(
    target: HttpTargetStandIn,
    other: HttpTargetStandIn,
    trusted: HttpClient,
    egress: HttpClient,
) -> None:
    data = await run(
        trusted,
        egress,
        url=f"{target.base_url}/redirect",
        query={"to": f"{other.base_url}/echo", "status": "302"},
        credential=CREDENTIAL,
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Cookie": "sid=abc", "X-Keep": "1"},
    )
    assert data["status_code"] == 200
    headers = data["body"]["headers"]
    assert "x-api-key" not in headers
    assert "authorization" not in headers
    assert "cookie" not in headers
    assert headers["x-keep"] == "1"
    assert [r.path for r in target.requests] == ["/redirect"]
    assert target.requests[0].headers["x-api-key"] == f"Key {TOKEN}"
    [hop] = other.requests
    assert "x-api-key" not in hop.headers


async def test_redirect_to_the_same_origin_keeps_the_credential(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    data = await run(
        trusted,
        egress,
        url=f"{target.base_url}/redirect",
        query={"to": "/echo", "status": "307"},
        credential=CREDENTIAL,
    )
    assert data["body"]["headers"]["x-api-key"] == f"Key {TOKEN}"
    assert [r.path for r in target.requests] == ["/redirect", "/echo"]


async def test_303_turns_post_into_get_without_body(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 303, headers={"Location": "/echo"})
    data = await run(trusted, egress, url=f"{target.base_url}/x", method="POST", json={"a": 1})
    assert data["body"]["method"] == "GET"
    assert data["body"]["body"] == ""
    assert "content-type" not in data["body"]["headers"]


async def test_307_keeps_method_and_body(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 307, headers={"Location": "/echo"})
    data = await run(trusted, egress, url=f"{target.base_url}/x", method="POST", json={"a": 1})
    assert data["body"]["method"] == "POST"
    assert data["body"]["json"] == {"a": 1}


async def test_more_redirects_than_allowed_is_upstream_error(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(10, 302, headers={"Location": "/echo"})
    with pytest.raises(UpstreamError, match="more than 2 redirects") as info:
        await run(
            trusted,
            egress,
            settings=action_settings(HttpRequestSettings(http_max_redirects=2)),
            url=f"{target.base_url}/start",
        )
    assert info.value.details == {"status_code": 302}
    assert len(target.requests) == 3


async def test_redirect_to_a_non_http_scheme_is_refused(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(ForbiddenDestination):
        await run(trusted, egress, url=f"{target.base_url}/start")


async def test_redirect_to_a_blocked_address_is_refused(
    target: HttpTargetStandIn, trusted: HttpClient
) -> None:
    # Only the target's own address is opened; the redirect goes to another loopback address.
    policy = EgressPolicy(parse_networks("127.0.0.1/32"))
    async with guarded_client(policy) as egress:
        target.fail_next(1, 302, headers={"Location": f"http://127.0.0.2:{target.port}/echo"})
        with pytest.raises(ForbiddenDestination):
            await run(trusted, egress, url=f"{target.base_url}/start")
    assert [r.path for r in target.requests] == ["/start"]


async def test_response_body_is_capped(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    settings = action_settings(HttpRequestSettings(http_max_response_bytes=100))
    data = await run(trusted, egress, settings=settings, url=f"{target.base_url}/bytes/100000")
    assert data["body"] == "a" * 100
    assert data["body_truncated"] is True
    exact = await run(trusted, egress, settings=settings, url=f"{target.base_url}/bytes/100")
    assert exact["body"] == "a" * 100
    assert "body_truncated" not in exact


async def test_hidden_response_headers_are_not_copied(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    target.fail_next(1, 200, headers={"Set-Cookie": "sid=secret", "X-Ok": "1"}, body=b"ok")
    data = await run(trusted, egress, url=f"{target.base_url}/echo")
    assert "set-cookie" not in {k.lower() for k in data["headers"]}
    assert data["headers"]["x-ok"] == "1"
    assert data["body"] == "ok"


async def test_success_with_a_deeply_nested_json_body_can_be_enveloped(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    # 300 levels is well within what json.loads accepts (~1000); the envelope must still render.
    nested = b'{"a":' * 300 + b"1" + b"}" * 300
    target.fail_next(1, 200, headers={"Content-Type": "application/json"}, body=nested)
    data = await run(trusted, egress, url=f"{target.base_url}/echo")
    now = datetime.now(UTC)
    envelope = success_envelope(
        "r", data, action="http_request", project="p", started_at=now, finished_at=now, attempts=1
    )
    assert json.loads(envelope.model_dump_json())["status"] == "success"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/"])
async def test_non_http_scheme_is_forbidden(
    trusted: HttpClient, egress: HttpClient, url: str
) -> None:
    with pytest.raises(ForbiddenDestination) as info:
        await run(trusted, egress, url=url)
    assert info.value.code is ErrorCode.FORBIDDEN_DESTINATION


async def test_blocked_destination_is_forbidden_by_default(
    target: HttpTargetStandIn, trusted: HttpClient
) -> None:
    async with guarded_client(EgressPolicy()) as egress:
        with pytest.raises(ForbiddenDestination):
            await run(trusted, egress, url=f"{target.base_url}/echo")
    assert target.requests == []


async def test_timeout_is_upstream_unavailable(
    target: HttpTargetStandIn, trusted: HttpClient, egress: HttpClient
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await run(trusted, egress, url=f"{target.base_url}/delay/1000", timeout_s=0.1)


def test_json_and_body_together_is_a_params_error() -> None:
    with pytest.raises(ValidationError, match="not both"):
        HttpRequestParams.model_validate({"url": "http://x.test/", "json": {"a": 1}, "body": "b"})
    # json null alone is a body ("null"), not "no body".
    assert (
        "json_body"
        in HttpRequestParams.model_validate(
            {"url": "http://x.test/", "json": None}
        ).model_fields_set
    )


def _one_attempt_runner(trusted: HttpClient, egress: HttpClient) -> ActionRunner:
    return ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials(),
        http=trusted,
        egress_http=egress,
        retry=RetryPolicy(max_attempts=1),
    )


async def test_json_and_body_together_through_the_runner_is_invalid_params(
    trusted: HttpClient, egress: HttpClient
) -> None:
    runner = _one_attempt_runner(trusted, egress)
    request = ExecutionRequest.model_validate(
        {
            "action": "http_request",
            "project": "p",
            "params": {"url": "http://x.test/", "json": {"a": 1}, "body": "b"},
        }
    )
    envelope = await runner.execute(request, "r", structlog.get_logger())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS
    assert envelope.error.message.startswith("params")


async def test_a_url_yarl_cannot_split_is_invalid_params_not_a_bug(
    trusted: HttpClient, egress: HttpClient
) -> None:
    # yarl raises IndexError (not ValueError) on `http://[]@`: it used to end internal_error.
    runner = _one_attempt_runner(trusted, egress)
    request = ExecutionRequest.model_validate(
        {"action": "http_request", "project": "p", "params": {"url": "http://[]@"}}
    )
    envelope = await runner.execute(request, "r", structlog.get_logger())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS
    assert envelope.error.message.startswith("params.url")


async def test_through_the_runner_forbidden_destination(
    trusted: HttpClient, egress: HttpClient
) -> None:
    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials(),
        http=trusted,
        egress_http=egress,
    )
    request = ExecutionRequest.model_validate(
        {"action": "http_request", "project": "p", "params": {"url": "ftp://127.0.0.1/x"}}
    )
    envelope = await runner.execute(request, "r", structlog.get_logger())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.FORBIDDEN_DESTINATION
    assert envelope.error.retryable is False
