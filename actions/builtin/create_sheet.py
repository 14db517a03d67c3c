"""`create_sheet`: append one row with Google Sheets `spreadsheets.values.append`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, upstream_of
from actions.errors import (
    CredentialRejected,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.ratelimit import RateKey, RateLimitSpec

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
        "off",
        "`create_sheet` writes of all projects together (Google's per-Cloud-project quota, "
        "e.g. `300/min`, when one OAuth client issues every project's token).",
    ),
)

Scalar = str | int | float | bool | None


class CreateSheetParams(ActionParams):
    spreadsheet_id: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
    values: list[Scalar] = Field(min_length=1, max_length=1000, description="One row.")
    range: str = Field(default="Sheet1", min_length=1, max_length=256, description="A1 notation.")
    value_input_option: Literal["RAW", "USER_ENTERED"] = "USER_ENTERED"


class CreateSheet(Action[CreateSheetParams]):
    name = "create_sheet"
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
        return upstream_of(ctx.config.google_sheets_api_url)

    async def run(self, params: CreateSheetParams, ctx: ActionContext) -> Mapping[str, Any]:
        token = await ctx.token(SERVICE)
        url = (
            f"{ctx.config.google_sheets_api_url.rstrip('/')}/v4/spreadsheets/"
            f"{params.spreadsheet_id}/values/{quote(params.range, safe='')}:append"
        )
        try:
            response = await ctx.http.post(
                url,
                params={
                    "valueInputOption": params.value_input_option,
                    "insertDataOption": "INSERT_ROWS",
                },
                json={"majorDimension": "ROWS", "values": [params.values]},
                headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            )
        except httpx.HTTPError as exc:
            raise error_for_exception("Google Sheets", exc) from None
        details = _google_error_details(response)
        if response.status_code == 401:
            raise CredentialRejected(SERVICE, "Google rejected the token", details=details)
        error = error_for_status(
            "Google Sheets", response, details, provider_message=details.get("message")
        )
        if error is not None:
            raise error
        try:
            updates = response.json().get("updates", {})
        except (ValueError, AttributeError):
            raise UpstreamUnavailable("Google Sheets answered with an unexpected body") from None
        return {
            "updated_range": updates.get("updatedRange"),
            "updated_rows": updates.get("updatedRows", 0),
        }


def _google_error_details(response: httpx.Response) -> dict[str, Any]:
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
