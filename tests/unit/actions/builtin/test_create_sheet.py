"""actions/builtin/create_sheet.py against the loopback Google Sheets stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from actions import RateLimited, UpstreamError
from actions.builtin.create_sheet import ACTION, CreateSheetParams, SheetsSettings
from actions.errors import CredentialRejected
from actions.http import HttpClient
from actions.settings import ActionSettingsSet
from schemas import ErrorCode
from tests.standins import SheetsStandIn
from tests.standins.sheets import google_error
from tests.unit.support import FakeCredentials, action_settings, make_context, plain_client

TOKEN = "token-demo-project-google_sheets"
SHEET_ID = "1AbC-def_GHI"


@pytest.fixture(scope="module")
def sheets_server() -> Iterator[SheetsStandIn]:
    with SheetsStandIn(valid_tokens={TOKEN}, spreadsheets={SHEET_ID}) as server:
        yield server


@pytest.fixture
def sheets(sheets_server: SheetsStandIn) -> SheetsStandIn:
    sheets_server.clear()
    return sheets_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


def params(**fields: object) -> CreateSheetParams:
    return CreateSheetParams.model_validate(
        {"spreadsheet_id": SHEET_ID, "values": ["a", 1, 2.5, True, None], **fields}
    )


def config(sheets: SheetsStandIn) -> ActionSettingsSet:
    return action_settings(SheetsSettings(google_sheets_api_url=sheets.base_url))


async def test_success(sheets: SheetsStandIn, http: HttpClient) -> None:
    credentials = FakeCredentials()
    ctx = make_context(http=http, credentials=credentials, settings=config(sheets))
    data = await ACTION.run(params(), ctx)
    assert data == {"updated_range": "Sheet1!A1:E1", "updated_rows": 1}
    assert credentials.gets == [("demo-project", "google_sheets")]
    [append] = sheets.appends
    assert append.values == [["a", 1, 2.5, True, None]]
    assert append.value_input_option == "USER_ENTERED"
    assert append.insert_data_option == "INSERT_ROWS"
    assert append.major_dimension == "ROWS"
    assert append.token == TOKEN
    [request] = sheets.requests
    assert request.query == {
        "valueInputOption": ["USER_ENTERED"],
        "insertDataOption": ["INSERT_ROWS"],
    }
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_range_is_url_encoded_and_option_sent(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    ctx = make_context(http=http, settings=config(sheets))
    data = await ACTION.run(params(range="My Sheet!B2", value_input_option="RAW"), ctx)
    [request] = sheets.requests
    assert request.path == f"/v4/spreadsheets/{SHEET_ID}/values/My%20Sheet%21B2:append"
    assert request.query["valueInputOption"] == ["RAW"]
    assert data == {"updated_range": "'My Sheet'!B1:F1", "updated_rows": 1}
    # A second append lands on the next row.
    again = await ACTION.run(params(range="My Sheet!B2"), ctx)
    assert again["updated_range"] == "'My Sheet'!B2:F2"


async def test_slash_and_question_mark_in_range_stay_in_the_segment(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    ctx = make_context(http=http, settings=config(sheets))
    await ACTION.run(params(range="a/b?c#d"), ctx)
    [request] = sheets.requests
    assert request.path == f"/v4/spreadsheets/{SHEET_ID}/values/a%2Fb%3Fc%23d:append"


async def test_google_error_object_is_upstream_error(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    ctx = make_context(http=http, settings=config(sheets))
    with pytest.raises(UpstreamError) as info:
        await ACTION.run(params(spreadsheet_id="unknown-sheet"), ctx)
    assert info.value.code is ErrorCode.UPSTREAM_ERROR
    assert info.value.details == {
        "status_code": 404,
        "provider_code": "NOT_FOUND",
        "message": "Requested entity was not found.",
    }


async def test_permission_denied(sheets: SheetsStandIn, http: HttpClient) -> None:
    sheets.inject(1, google_error(403, "PERMISSION_DENIED", "The caller does not have permission"))
    with pytest.raises(UpstreamError) as info:
        await ACTION.run(params(), make_context(http=http, settings=config(sheets)))
    assert info.value.details is not None
    assert info.value.details["provider_code"] == "PERMISSION_DENIED"
    assert info.value.details["status_code"] == 403
    assert "The caller does not have permission" in info.value.message


async def test_401_is_credential_rejected(sheets: SheetsStandIn, http: HttpClient) -> None:
    ctx = make_context(
        http=http,
        settings=config(sheets),
        credentials=FakeCredentials({("demo-project", "google_sheets"): "wrong-token"}),
    )
    with pytest.raises(CredentialRejected) as info:
        await ACTION.run(params(), ctx)
    assert info.value.service == "google_sheets"
    assert info.value.details is not None
    assert info.value.details["provider_code"] == "UNAUTHENTICATED"


async def test_429_is_rate_limited(sheets: SheetsStandIn, http: HttpClient) -> None:
    sheets.rate_limit_next(1, retry_after=2)
    with pytest.raises(RateLimited) as info:
        await ACTION.run(params(), make_context(http=http, settings=config(sheets)))
    assert info.value.retry_after_s == 2.0
    assert info.value.details is not None
    assert info.value.details["provider_code"] == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize(
    "bad",
    [
        {"values": []},
        {"values": [["nested"]]},
        {"spreadsheet_id": "a/b"},
        {"value_input_option": "FORMULA"},
        {"range": ""},
    ],
)
def test_params_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        params(**bad)
