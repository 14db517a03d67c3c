"""`create_sheet`: append one row with Google Sheets `spreadsheets.values.append`.

`values.append` has no idempotency key: once sent, a call is never sent again by us. A lost
answer and every 5xx end `outcome_unknown`: Google's 503 `UNAVAILABLE` is "not always safe to
retry non-idempotent operations" (google/rpc/code.proto), so an append answered 503 may have
written its row. A 429 `RESOURCE_EXHAUSTED` means the per-minute quota is spent and nothing was
written: it waits for the quota window (Google: "after 1 minute you can execute requests
again"), within `GOOGLE_SHEETS_QUOTA_WAIT_S` and the request's deadline, and pauses the quota's
rate key (the project's for a per-user quota, every project's for the Cloud project's) so the
other appends wait too instead of spending 429s.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, upstream_of
from actions.errors import (
    CredentialRejected,
    OutcomeUnknown,
    RateLimited,
    error_for_exception,
    error_for_status,
)
from actions.http import HttpError, HttpResponse
from actions.ratelimit import RateKey, RateLimitSpec
from actions.settings import ActionSettings, setting

SERVICE = "google_sheets"
# Google's write quotas: per spreadsheet (we space writes to one sheet), per user (a project's
# credential is one user), and per Google Cloud project (shared by every project's calls).
SPREADSHEET_LIMIT = "google_sheets.spreadsheet"
PROJECT_LIMIT = "google_sheets.project"
TOTAL_LIMIT = "google_sheets.total"
RATE_LIMITS = (
    RateLimitSpec(
        SPREADSHEET_LIMIT,
        "GOOGLE_SHEETS_RATE_LIMIT_PER_SPREADSHEET",
        "1/s",
        "`create_sheet` writes per spreadsheet (same syntax).",
    ),
    RateLimitSpec(
        PROJECT_LIMIT,
        "GOOGLE_SHEETS_RATE_LIMIT_PER_PROJECT",
        "60/min",
        "`create_sheet` writes per project (Google's per-user write quota; same syntax).",
    ),
    RateLimitSpec(
        TOTAL_LIMIT,
        "GOOGLE_SHEETS_RATE_LIMIT_TOTAL",
        "300/min",
        "`create_sheet` writes of all projects together (Google's per-Cloud-project quota, "
        "300 writes/min, when one OAuth client issues every project's token); `off` for none.",
    ),
)

Scalar = str | int | float | bool | None
# A1 notation without a sheet name addresses the first visible sheet, whatever its title
# (renamed, localised): the default when `range` is absent.
FIRST_SHEET_RANGE = "A1"
# What Sheets evaluates as a formula when a string is typed in (USER_ENTERED).
_FORMULA_STARTS = ("=", "+", "-", "@")


class CreateSheetParams(ActionParams):
    spreadsheet_id: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
    values: list[Scalar] = Field(min_length=1, max_length=1000, description="One row.")
    range: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="A1 notation; absent: the first visible sheet, whatever its name.",
    )
    value_input_option: Literal["RAW", "USER_ENTERED"] = "USER_ENTERED"
    strings_as_data: bool = Field(
        default=False,
        description="With USER_ENTERED, a string starting with =, +, - or @ is sent with a "
        "leading apostrophe: Sheets stores it as text and never evaluates it as a formula.",
    )


class SheetsSettings(ActionSettings):
    google_sheets_api_url: str = setting(
        "GOOGLE_SHEETS_API_URL", "https://sheets.googleapis.com", "Google Sheets API base URL."
    )
    sheets_quota_wait_s: float = setting(
        "GOOGLE_SHEETS_QUOTA_WAIT_S",
        # A minute's quota window and a margin.
        65.0,
        "How long one `create_sheet` may wait out Google's per-minute quota (429) in all; the "
        "request's deadline bounds it too.",
        ge=0,
    )
    google_sheets_timeout_s: float = setting(
        "GOOGLE_SHEETS_TIMEOUT_S",
        # Google documents no server time limit: the attempt's own 30 s.
        30.0,
        "How long an append's answer is awaited (the request's deadline bounds it too).",
        gt=0,
    )


class CreateSheet(Action[CreateSheetParams]):
    name = "create_sheet"
    settings_model = SheetsSettings
    params_model = CreateSheetParams
    service = SERVICE
    description = "Appends one row to a Google Sheets spreadsheet."
    rate_limits = RATE_LIMITS

    def rate_keys(self, params: CreateSheetParams, ctx: ActionContext) -> Sequence[RateKey]:
        return (
            RateKey(SPREADSHEET_LIMIT, params.spreadsheet_id),
            RateKey(PROJECT_LIMIT, ctx.project),
            RateKey(TOTAL_LIMIT, ""),
        )

    def upstream(self, params: CreateSheetParams, ctx: ActionContext) -> str | None:
        return upstream_of(ctx.settings.get(SheetsSettings).google_sheets_api_url)

    async def run(self, params: CreateSheetParams, ctx: ActionContext) -> Mapping[str, Any]:
        authorization = await ctx.credential_header(SERVICE)
        url = (
            f"{ctx.settings.get(SheetsSettings).google_sheets_api_url.rstrip('/')}/v4/spreadsheets/"
            f"{params.spreadsheet_id}/values/{quote(params.range or FIRST_SHEET_RANGE, safe='')}"
            ":append"
        )
        ctx.attempt.sending(idempotent=False)
        try:
            response = await ctx.http.post(
                url,
                params={
                    "valueInputOption": params.value_input_option,
                    "insertDataOption": "INSERT_ROWS",
                },
                json={"majorDimension": "ROWS", "values": [_row(params)]},
                headers={"Authorization": authorization},
                timeout_s=ctx.call_timeout_s(
                    ctx.settings.get(SheetsSettings).google_sheets_timeout_s
                ),
            )
        except HttpError as exc:
            raise error_for_exception("Google Sheets", exc, idempotent=False) from None
        details = _google_error_details(response)
        if response.status == 401:
            raise CredentialRejected(SERVICE, "Google rejected the token", details=details)
        error = error_for_status(
            "Google Sheets",
            response,
            details,
            idempotent=False,
            provider_message=details.get("message"),
        )
        if isinstance(error, RateLimited):
            error.pause = (_spent_quota(details.get("message"), ctx),)
            raise _quota_wait(error, ctx)
        if error is not None:
            raise error
        try:
            updates = response.json().get("updates", {})
        except (ValueError, AttributeError):
            raise OutcomeUnknown("Google Sheets answered with an unexpected body") from None
        return {
            "updated_range": updates.get("updatedRange"),
            "updated_rows": updates.get("updatedRows", 0),
        }


def _row(params: CreateSheetParams) -> list[Scalar]:
    if not params.strings_as_data or params.value_input_option == "RAW":
        return list(params.values)
    # The apostrophe is Sheets' own "this is text" mark: not shown, not stored in the value.
    return [
        f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_STARTS) else v
        for v in params.values
    ]


def _quota_wait(error: RateLimited, ctx: ActionContext) -> RateLimited:
    """A 429 without Retry-After: Google's truncated exponential backoff (4, 8, 16, 32 s and
    a random second), which covers one per-minute quota window within five attempts."""
    if error.retry_after_s is None:
        error.retry_after_s = 2.0 ** (ctx.attempt.number + 1) + random.random()
    error.wait_limit_s = ctx.settings.get(SheetsSettings).sheets_quota_wait_s
    return error


def _spent_quota(message: object, ctx: ActionContext) -> RateKey:
    """The rate key of the quota a 429 names: Google's message says "... per minute per user"
    for the per-user quota (a project's credential is one user), else the Cloud project's,
    which every project's appends share."""
    if isinstance(message, str) and "per user" in message.lower():
        return RateKey(PROJECT_LIMIT, ctx.project)
    return RateKey(TOTAL_LIMIT, "")


def _google_error_details(response: HttpResponse) -> dict[str, Any]:
    """Google's error object: {"error": {"code", "message", "status"}} -> details."""
    if response.is_success:
        return {}
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return {}
    if not isinstance(error, dict):
        return {}
    details: dict[str, Any] = {}
    if isinstance(error.get("status"), str):
        details["provider_code"] = error["status"]
    if isinstance(error.get("message"), str):
        details["message"] = error["message"][:500]
    return details


ACTION = CreateSheet()
