"""notion_create_page against the loopback Notion stand-in (Notion's documented answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from actions import ActionConfig, CredentialRejected, RateLimited, UpstreamError
from actions.builtin.notion_create_page import ACTION, NotionCreatePageParams
from actions.errors import UpstreamUnavailable
from actions.http import HttpClient
from tests.standins import NotionStandIn
from tests.unit.support import FakeCredentials, make_context, plain_client

TOKEN = "secret_notion_0001"
DATABASE = "d9824bdc84454327be8b5b47500af6ce"
PAGE = "b55c9c91-384d-452b-81db-d1ef79372b75"


@pytest.fixture(scope="module")
def notion_server() -> Iterator[NotionStandIn]:
    with NotionStandIn({TOKEN}, databases={DATABASE}, pages={PAGE}) as server:
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
        config=ActionConfig(notion_api_url=notion.base_url),
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
    assert request.headers["notion-version"] == "2022-06-28"
    body = request.json()
    assert body["parent"] == {"database_id": DATABASE}
    assert body["properties"]["Name"]["title"][0]["text"]["content"] == "New signup"
    assert body["properties"]["Email"] == {"email": "ada@example.com"}
    assert len(body["children"]) == 1


async def test_a_page_under_a_page_uses_the_title_property(
    notion: NotionStandIn, http: HttpClient
) -> None:
    await create(notion, http, page_id=PAGE, title="Notes")
    body = notion.requests[0].json()
    assert body["parent"] == {"page_id": PAGE}
    assert list(body["properties"]) == ["title"]
    assert "children" not in body


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
        (503, "service_unavailable", UpstreamUnavailable),
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
    if status == 429:
        assert info.value.retry_after_s == 2.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "params",
    [
        {"title": "no parent"},
        {"database_id": DATABASE, "page_id": PAGE, "title": "two parents"},
        {"page_id": PAGE},
        {"page_id": "../../v1/users", "title": "x"},
    ],
)
def test_params_are_checked(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NotionCreatePageParams.model_validate(params)
