"""`notion_create_page`: Notion API `POST /v1/pages` with the project's `notion` token.

Notion answers errors with `{"object": "error", "status", "code", "message"}`; the code goes to
`details.provider_code`. What each answer means, as Notion documents it (developers.notion.com
/reference/status-codes and /reference/request-limits):

- 401 `unauthorized`: a rejected token (fetched once more).
- 409 `conflict_error`: "the transaction could not be completed": nothing was created, retried.
- 429 `rate_limited` and 529 `service_overload`: refused, "respect the Retry-After": retried
  after it, up to the request's deadline (`NOTION_RETRY_AFTER_MAX_S` without one); a 429 also
  pauses the project's rate key for that long.
- 500, 503 (`service_unavailable` is answered when a request "takes longer than 60 seconds": the
  page may exist), 504 and a lost answer: `outcome_unknown`, never repeated (no idempotency key).

Notion's own request timeout is 60 s, so we wait longer (`NOTION_TIMEOUT_S`, bounded by the
request's deadline): a slow create that succeeds is a success, not an unknown outcome.

The title is set through the title property's id, `title`, which every database and page has
whatever the column is called; `title_property` names it instead when wanted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, model_validator

from actions.base import (
    Action,
    ActionContext,
    ActionParams,
    upstream_of,
)
from actions.errors import (
    CredentialRejected,
    OutcomeUnknown,
    RetryableError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.http import HttpError, HttpResponse
from actions.ratelimit import RateKey, RateLimitSpec
from actions.settings import ActionSettings, setting

SERVICE = "notion"
# Notion allows an average of three requests per second per integration (one per project).
PROJECT_LIMIT = "notion.project"
PROJECT_RATE = RateLimitSpec(
    PROJECT_LIMIT,
    "NOTION_RATE_LIMIT_PER_PROJECT",
    "3/s",
    "`notion_create_page` calls per project (Notion allows about 3 per integration).",
)
# Notion's answer "retry after Retry-After" beside 429 (request-limits: "handle HTTP 429 and 529").
SERVICE_OVERLOAD = 529
# The id of every database's (and page's) title property, whatever its display name.
TITLE_PROPERTY_ID = "title"
_NOTION_ID = r"^[0-9a-fA-F-]{32,36}$"


class NotionCreatePageParams(ActionParams):
    database_id: str | None = Field(
        default=None, pattern=_NOTION_ID, description="Parent database (one data source)."
    )
    data_source_id: str | None = Field(
        default=None, pattern=_NOTION_ID, description="Parent data source (Notion 2025-09-03)."
    )
    page_id: str | None = Field(default=None, pattern=_NOTION_ID, description="Parent page.")
    title: str | None = Field(
        default=None, max_length=2000, description="Sets the title property (plain text)."
    )
    title_property: str | None = Field(
        default=None,
        max_length=100,
        description="Name (or id) of the title property; default its id, `title`.",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="Notion property values, as the API."
    )
    children: list[dict[str, Any]] | None = Field(
        default=None, max_length=100, description="Block objects for the page body."
    )

    @model_validator(mode="after")
    def _one_parent(self) -> NotionCreatePageParams:
        parents = (self.database_id, self.data_source_id, self.page_id)
        if sum(parent is not None for parent in parents) != 1:
            raise ValueError("give `database_id`, `data_source_id` or `page_id`, exactly one")
        if self.title is None and not self.properties:
            raise ValueError("give `title` or `properties`")
        return self


class NotionSettings(ActionSettings):
    notion_api_url: str = setting(
        "NOTION_API_URL", "https://api.notion.com", "Notion API base URL."
    )
    notion_version: str = setting(
        "NOTION_VERSION",
        # 2025-09-03: databases hold data sources; pages are created under `data_source_id`.
        "2025-09-03",
        "Sent as `Notion-Version` (the API version we speak).",
    )
    notion_retry_after_max_s: float = setting(
        "NOTION_RETRY_AFTER_MAX_S",
        120.0,
        "Longest Notion `Retry-After` honoured for a request without a deadline (with one, "
        "up to the deadline).",
        ge=0,
    )
    notion_timeout_s: float = setting(
        "NOTION_TIMEOUT_S",
        # Notion ends a request at 60 s (503 `service_unavailable`): wait longer than that.
        65.0,
        "How long a page create's answer is awaited (the request's deadline bounds it too).",
        gt=0,
    )


class NotionCreatePage(Action[NotionCreatePageParams]):
    name = "notion_create_page"
    settings_model = NotionSettings
    params_model = NotionCreatePageParams
    service = SERVICE
    description = "Creates a Notion page in a database or under a page (POST /v1/pages)."
    rate_limits = (PROJECT_RATE,)

    def rate_keys(self, params: NotionCreatePageParams, ctx: ActionContext) -> Sequence[RateKey]:
        return (RateKey(PROJECT_LIMIT, ctx.project),)

    def upstream(self, params: NotionCreatePageParams, ctx: ActionContext) -> str | None:
        return upstream_of(ctx.settings.get(NotionSettings).notion_api_url)

    def attempt_timeout_s(self, params: NotionCreatePageParams, ctx: ActionContext) -> float:
        return ctx.settings.get(NotionSettings).notion_timeout_s

    async def run(self, params: NotionCreatePageParams, ctx: ActionContext) -> Mapping[str, Any]:
        settings = ctx.settings.get(NotionSettings)
        authorization = await ctx.credential_header(SERVICE)
        ctx.attempt.sending(idempotent=False)
        try:
            response = await ctx.http.post(
                f"{settings.notion_api_url.rstrip('/')}/v1/pages",
                json=_body(params),
                headers={
                    "Authorization": authorization,
                    "Notion-Version": settings.notion_version,
                },
                timeout_s=ctx.call_timeout_s(settings.notion_timeout_s),
            )
        except HttpError as exc:
            raise error_for_exception("Notion", exc, idempotent=False) from None
        details, message = _notion_error(response)
        if response.status == 401:
            raise CredentialRejected(SERVICE, "Notion rejected the token", details=details)
        if response.status == 409:
            raise UpstreamUnavailable(f"Notion: {message or 'conflict'}", details=details)
        error = error_for_status(
            "Notion",
            response,
            details,
            idempotent=False,
            provider_message=message,
            not_applied=(SERVICE_OVERLOAD,),
        )
        if isinstance(error, RetryableError) and response.status in (429, SERVICE_OVERLOAD):
            # Notion means its Retry-After: honoured up to the deadline, not cut at our clamp.
            error.wait_limit_s = (
                float("inf") if ctx.deadline is not None else settings.notion_retry_after_max_s
            )
            if response.status == 429:
                # The integration's quota is spent: the project's other pages wait too.
                error.pause = tuple(self.rate_keys(params, ctx))
        if error is not None:
            raise error
        try:
            page = response.json()
            return {"page_id": page["id"], "url": page.get("url")}
        except (ValueError, KeyError, TypeError):
            raise OutcomeUnknown("Notion answered with an unexpected body") from None


def _body(params: NotionCreatePageParams) -> dict[str, Any]:
    properties = dict(params.properties)
    parent: dict[str, str | None]
    if params.data_source_id is not None:
        parent = {"type": "data_source_id", "data_source_id": params.data_source_id}
    elif params.database_id is not None:
        parent = {"type": "database_id", "database_id": params.database_id}
    else:
        parent = {"type": "page_id", "page_id": params.page_id}
    title_key = params.title_property or TITLE_PROPERTY_ID
    if params.title is not None:
        properties[title_key] = {"title": [{"type": "text", "text": {"content": params.title}}]}
    body: dict[str, Any] = {"parent": parent, "properties": properties}
    if params.children is not None:
        body["children"] = params.children
    return body


def _notion_error(response: HttpResponse) -> tuple[dict[str, Any], str | None]:
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
