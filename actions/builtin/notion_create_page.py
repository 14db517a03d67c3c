"""`notion_create_page`: Notion API `POST /v1/pages` with the project's `notion` token.

Notion answers errors with `{"object": "error", "status", "code", "message"}`; the code goes to
`details.provider_code`. 401 `unauthorized` is a rejected token (fetched once more), 409
`conflict_error` is transient (Notion says to try again), 429 honours `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import Field, model_validator

from actions.base import Action, ActionContext, ActionParams, upstream_of
from actions.errors import (
    CredentialRejected,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.ratelimit import RateKey, RateLimitSpec

SERVICE = "notion"
# Notion allows an average of three requests per second per integration (one per project).
PROJECT_LIMIT = "notion.project"
PROJECT_RATE = RateLimitSpec(
    PROJECT_LIMIT,
    "NOTION_RATE_LIMIT_PER_PROJECT",
    "3/s",
    "`notion_create_page` calls per project (Notion allows about 3 per integration).",
)
_NOTION_ID = r"^[0-9a-fA-F-]{32,36}$"


class NotionCreatePageParams(ActionParams):
    database_id: str | None = Field(default=None, pattern=_NOTION_ID, description="Parent DB.")
    page_id: str | None = Field(default=None, pattern=_NOTION_ID, description="Parent page.")
    title: str | None = Field(
        default=None, max_length=2000, description="Sets the title property (plain text)."
    )
    title_property: str | None = Field(
        default=None,
        max_length=100,
        description="Name of the database's title property (default `Name`; pages: `title`).",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="Notion property values, as the API."
    )
    children: list[dict[str, Any]] | None = Field(
        default=None, max_length=100, description="Block objects for the page body."
    )

    @model_validator(mode="after")
    def _one_parent(self) -> NotionCreatePageParams:
        if (self.database_id is None) == (self.page_id is None):
            raise ValueError("give `database_id` or `page_id`, exactly one")
        if self.title is None and not self.properties:
            raise ValueError("give `title` or `properties`")
        return self


class NotionCreatePage(Action[NotionCreatePageParams]):
    name = "notion_create_page"
    params_model = NotionCreatePageParams
    service = SERVICE
    description = "Creates a Notion page in a database or under a page (POST /v1/pages)."
    rate_limits = (PROJECT_RATE,)

    def rate_keys(self, params: NotionCreatePageParams, ctx: ActionContext) -> Sequence[RateKey]:
        return (RateKey(PROJECT_LIMIT, ctx.project),)

    def upstream(self, params: NotionCreatePageParams, ctx: ActionContext) -> str | None:
        return upstream_of(ctx.config.notion_api_url)

    async def run(self, params: NotionCreatePageParams, ctx: ActionContext) -> Mapping[str, Any]:
        token = await ctx.token(SERVICE)
        try:
            response = await ctx.http.post(
                f"{ctx.config.notion_api_url.rstrip('/')}/v1/pages",
                json=_body(params),
                headers={
                    "Authorization": f"Bearer {token.get_secret_value()}",
                    "Notion-Version": ctx.config.notion_version,
                },
            )
        except httpx.HTTPError as exc:
            raise error_for_exception("Notion", exc) from None
        details, message = _notion_error(response)
        if response.status_code == 401:
            raise CredentialRejected(SERVICE, "Notion rejected the token", details=details)
        if response.status_code == 409:
            raise UpstreamUnavailable(f"Notion: {message or 'conflict'}", details=details)
        error = error_for_status("Notion", response, details, provider_message=message)
        if error is not None:
            raise error
        try:
            page = response.json()
            return {"page_id": page["id"], "url": page.get("url")}
        except (ValueError, KeyError, TypeError):
            raise UpstreamUnavailable("Notion answered with an unexpected body") from None


def _body(params: NotionCreatePageParams) -> dict[str, Any]:
    properties = dict(params.properties)
    parent: dict[str, str | None]
    if params.database_id is not None:
        parent = {"database_id": params.database_id}
        title_key = params.title_property or "Name"
    else:
        parent = {"page_id": params.page_id}
        title_key = params.title_property or "title"
    if params.title is not None:
        properties[title_key] = {"title": [{"type": "text", "text": {"content": params.title}}]}
    body: dict[str, Any] = {"parent": parent, "properties": properties}
    if params.children is not None:
        body["children"] = params.children
    return body


def _notion_error(response: httpx.Response) -> tuple[dict[str, Any], str | None]:
    """Notion's error object -> (details with provider_code, its message)."""
    if response.is_success:
        return {}, None
    try:
        error = response.json()
    except ValueError:
        return {}, None
    if not isinstance(error, dict) or error.get("object") != "error":
        return {}, None
    details: dict[str, Any] = {}
    if isinstance(error.get("code"), str):
        details["provider_code"] = error["code"]
    message = error.get("message")
    return details, message[:500] if isinstance(message, str) else None


ACTION = NotionCreatePage()
