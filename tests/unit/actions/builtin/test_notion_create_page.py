"""notion_create_page against the loopback Notion stand-in (Notion's documented answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from actions import CredentialRejected, OutcomeUnknown, RateKey, RateLimited, UpstreamError
from actions.builtin.notion_create_page import ACTION, NotionCreatePageParams, NotionSettings
from actions.errors import UpstreamUnavailable
from actions.http import HttpClient
from actions.ratelimit import RateLimiter
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ExecutionRequest
from tests.standins import NotionStandIn
from tests.unit.support import FakeCredentials, action_settings, make_context, plain_client

TOKEN = "secret_notion_0001"
DATABASE = "d9824bdc84454327be8b5b47500af6ce"
# A database whose title column is not called "Name" (renamed, or another language).
TASKS = "1f0b6d1e5c2a4e8f9a7b3c4d5e6f7a8b"
# A database with two data sources (Notion 2025-09-03), and one of them.
MULTI = "2a1b3c4d5e6f47a8b9c0d1e2f3a4b5c6"
MULTI_SOURCE = "3b2c4d5e6f7a48b9c0d1e2f3a4b5c6d7"
PAGE = "b55c9c91-384d-452b-81db-d1ef79372b75"


@pytest.fixture(scope="module")
def notion_server() -> Iterator[NotionStandIn]:
    with NotionStandIn(
        {TOKEN},
        databases={
            DATABASE: {"Name": "title", "Email": "email"},
            TASKS: {"Aufgabe": "title", "Status": "status"},
            MULTI: {"Title": "title"},
        },
        pages={PAGE},
        data_sources={MULTI_SOURCE: MULTI, "4c3d5e6f7a8b49c0d1e2f3a4b5c6d7e8": MULTI},
    ) as server:
        yield server


@pytest.fixture
def notion(notion_server: NotionStandIn) -> NotionStandIn:
    notion_server.clear()
    notion_server.created.clear()
    return notion_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


async def create(
    notion: NotionStandIn, http: HttpClient, token: str = TOKEN, **params: Any
) -> dict[str, Any]:
    ctx = make_context(
        http=http,
        credentials=FakeCredentials({("demo-project", "notion"): token}),
        settings=action_settings(NotionSettings(notion_api_url=notion.base_url)),
    )
    return dict(await ACTION.run(NotionCreatePageParams.model_validate(params), ctx))


async def test_a_page_in_a_database(notion: NotionStandIn, http: HttpClient) -> None:
    data = await create(
        notion,
        http,
        database_id=DATABASE,
        title="New signup",
        properties={"Email": {"email": "ada@example.com"}},
        children=[{"object": "block", "type": "paragraph", "paragraph": {"rich_text": []}}],
    )
    assert set(data) == {"page_id", "url"} and data["url"].startswith("https://www.notion.so/")
    (request,) = notion.requests
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["notion-version"] == "2025-09-03"
    body = request.json()
    assert body["parent"] == {"type": "database_id", "database_id": DATABASE}
    # Set by the title property's id, which every database has whatever the column's name.
    assert body["properties"]["title"]["title"][0]["text"]["content"] == "New signup"
    assert body["properties"]["Email"] == {"email": "ada@example.com"}
    assert len(body["children"]) == 1


async def test_a_page_under_a_page_uses_the_title_property(
    notion: NotionStandIn, http: HttpClient
) -> None:
    await create(notion, http, page_id=PAGE, title="Notes")
    body = notion.requests[0].json()
    assert body["parent"] == {"type": "page_id", "page_id": PAGE}
    assert list(body["properties"]) == ["title"]
    assert "children" not in body


async def test_the_title_lands_whatever_the_title_column_is_called(
    notion: NotionStandIn, http: HttpClient
) -> None:
    await create(notion, http, database_id=TASKS, title="Ship it")
    assert notion.created[0]["properties"]["title"]["title"][0]["text"]["content"] == "Ship it"


async def test_a_named_title_property_is_used_as_given(
    notion: NotionStandIn, http: HttpClient
) -> None:
    await create(notion, http, database_id=TASKS, title="Ship it", title_property="Aufgabe")
    assert list(notion.created[0]["properties"]) == ["Aufgabe"]


async def test_a_property_name_the_database_lacks_is_notions_validation_error(
    notion: NotionStandIn, http: HttpClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await create(notion, http, database_id=TASKS, title="x", title_property="Name")
    assert info.value.details == {"status_code": 400, "provider_code": "validation_error"}
    assert "Name is not a property that exists" in info.value.message


async def test_a_data_source_parent(notion: NotionStandIn, http: HttpClient) -> None:
    await create(notion, http, data_source_id=MULTI_SOURCE, title="In one source")
    assert notion.created[0]["parent"] == {
        "type": "data_source_id",
        "data_source_id": MULTI_SOURCE,
    }


async def test_a_database_parent_with_two_data_sources_is_refused_as_notion_does(
    notion: NotionStandIn, http: HttpClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await create(notion, http, database_id=MULTI, title="x")
    assert "data_source_id" in info.value.message and not notion.created


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_a_5xx_is_outcome_unknown(
    notion: NotionStandIn, http: HttpClient, status: int
) -> None:
    notion.fail_next(1, status, body={"object": "error", "status": status, "code": "x"})
    with pytest.raises(OutcomeUnknown) as info:
        await create(notion, http, page_id=PAGE, title="x")
    assert info.value.details == {"status_code": status, "provider_code": "x", "sent": True}


async def test_retry_after_is_honoured_past_the_engine_clamp_up_to_the_deadline() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    paused: list[float] = []

    async def limiter_sleep(seconds: float) -> None:
        paused.append(seconds)

    # The 429 pauses the project's key for 45 s too: other pages of the project wait.
    limiter = RateLimiter(sleep=limiter_sleep)
    with NotionStandIn({TOKEN}, pages={PAGE}) as server:
        body = {"object": "error", "status": 429, "code": "rate_limited", "message": "m"}
        server.fail_next(1, 429, headers={"Retry-After": "45"}, body=body)
        async with plain_client() as client:
            runner = ActionRunner(
                registry=ActionRegistry([ACTION]),
                credentials=FakeCredentials({("demo-project", "notion"): TOKEN}),
                http=client,
                egress_http=client,
                settings=action_settings(NotionSettings(notion_api_url=server.base_url)),
                retry=RetryPolicy(max_retry_after_s=30.0, budget_s=30.0),
                sleep=sleep,
                limiter=limiter,
            )
            request = ExecutionRequest.model_validate(
                {
                    "action": "notion_create_page",
                    "project": "demo-project",
                    "params": {"page_id": PAGE, "title": "x"},
                    "deadline": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
                }
            )
            envelope = await runner.execute(request, "r-1", structlog.get_logger())
    assert envelope.status == "success" and envelope.attempts == 2
    assert sleeps == [45.0], "Notion's Retry-After, not cut at the engine's 30 s clamp"
    assert limiter.reserve([RateKey("notion.project", "demo-project")]) > 40


async def test_529_service_overload_is_retried_after_retry_after(
    notion: NotionStandIn, http: HttpClient
) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    notion.overload_next(1, retry_after=2)
    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials({("demo-project", "notion"): TOKEN}),
        http=http,
        egress_http=http,
        settings=action_settings(NotionSettings(notion_api_url=notion.base_url)),
        sleep=sleep,
    )
    request = ExecutionRequest.model_validate(
        {
            "action": "notion_create_page",
            "project": "demo-project",
            "params": {"page_id": PAGE, "title": "x"},
        }
    )
    envelope = await runner.execute(request, "r-529", structlog.get_logger())
    assert envelope.status == "success" and envelope.attempts == 2, envelope.error
    assert sleeps == [2.0] and len(notion.created) == 1


async def test_a_page_created_then_answered_503_is_not_created_again(
    notion: NotionStandIn, http: HttpClient
) -> None:
    # Notion: 503 when a request "takes longer than 60 seconds": the page may exist.
    body = {"object": "error", "status": 503, "code": "service_unavailable", "message": "m"}
    notion.fail_after_applying(1, 503, body=body)
    with pytest.raises(OutcomeUnknown):
        await create(notion, http, page_id=PAGE, title="x")
    assert len(notion.created) == 1


async def test_a_refused_token_is_credential_rejected(
    notion: NotionStandIn, http: HttpClient
) -> None:
    with pytest.raises(CredentialRejected) as info:
        await create(notion, http, token="secret_wrong", page_id=PAGE, title="x")
    assert info.value.service == "notion"
    assert info.value.details == {"provider_code": "unauthorized"}


async def test_an_unknown_parent_is_an_upstream_error_with_notions_code(
    notion: NotionStandIn, http: HttpClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await create(notion, http, database_id="0" * 32, title="x")
    assert info.value.details == {"status_code": 404, "provider_code": "object_not_found"}
    assert "Could not find parent" in info.value.message


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (429, "rate_limited", RateLimited),
        (409, "conflict_error", UpstreamUnavailable),
        (529, "service_overload", UpstreamUnavailable),
        (503, "service_unavailable", OutcomeUnknown),
        (400, "validation_error", UpstreamError),
    ],
)
async def test_notion_error_codes(
    notion: NotionStandIn, http: HttpClient, status: int, code: str, error: type[Exception]
) -> None:
    body = {"object": "error", "status": status, "code": code, "message": "m"}
    notion.fail_next(1, status, headers={"Retry-After": "2"}, body=body)
    with pytest.raises(error) as info:
        await create(notion, http, page_id=PAGE, title="x")
    assert info.value.details is not None  # type: ignore[attr-defined]
    assert info.value.details["provider_code"] == code  # type: ignore[attr-defined]
    if status in (429, 529):
        assert info.value.retry_after_s == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "params",
    [
        {"title": "no parent"},
        {"database_id": DATABASE, "page_id": PAGE, "title": "two parents"},
        {"database_id": DATABASE, "data_source_id": MULTI_SOURCE, "title": "two parents"},
        {"page_id": PAGE},
        {"page_id": "../../v1/users", "title": "x"},
    ],
)
def test_params_are_checked(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NotionCreatePageParams.model_validate(params)
