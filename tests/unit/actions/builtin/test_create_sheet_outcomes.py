"""create_sheet as Google documents Sheets: the first sheet whatever its title, strings as data,
per-minute quota windows waited out, and no row appended twice by our own retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from actions import RateKey
from actions.builtin.create_sheet import ACTION, SheetsSettings
from actions.http import HttpClient
from actions.ratelimit import RateLimiter
from actions.registry import ActionRegistry, default_registry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from actions.settings import ActionSettingsSet
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.standins import SheetsStandIn
from tests.unit.support import FakeCredentials, action_settings, plain_client

SHEET_ID = "1AbC-def_GHI"


@pytest.fixture(scope="module")
def sheets_server() -> Iterator[SheetsStandIn]:
    with SheetsStandIn() as server:
        yield server


@pytest.fixture
def sheets(sheets_server: SheetsStandIn) -> SheetsStandIn:
    sheets_server.clear()
    # A renamed (or localised) first tab, and a second one.
    sheets_server.sheet_titles[SHEET_ID] = ["Anmeldungen", "Archiv"]
    return sheets_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


class Sleeps:
    """A fake sleep whose waits move the runner's clocks (monotonic and wall) forward."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.start = datetime.now(UTC)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    def clock(self) -> float:
        return sum(self.delays)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.clock())


async def append(
    sheets: SheetsStandIn,
    http: HttpClient,
    sleep: Sleeps | None = None,
    deadline: datetime | None = None,
    settings: ActionSettingsSet | None = None,
    limiter: RateLimiter | None = None,
    **params: Any,
) -> ResultEnvelope:
    sleep = sleep or Sleeps()
    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials(),
        http=http,
        egress_http=http,
        settings=settings or action_settings(SheetsSettings(google_sheets_api_url=sheets.base_url)),
        sleep=sleep,
        clock=sleep.clock,
        now=sleep.now,
        retry=RetryPolicy(),
        limiter=limiter if limiter is not None else RateLimiter(clock=sleep.clock, sleep=sleep),
    )
    request = ExecutionRequest.model_validate(
        {
            "action": "create_sheet",
            "project": "demo",
            "params": {"spreadsheet_id": SHEET_ID, "values": ["ada", 1], **params},
            **({"deadline": deadline.isoformat()} if deadline else {}),
        }
    )
    return await runner.execute(request, "req-1", structlog.get_logger())


async def test_without_range_the_row_lands_on_the_first_sheet_whatever_its_title(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    envelope = await append(sheets, http)
    assert envelope.status == "success", envelope.error
    assert envelope.data == {"updated_range": "Anmeldungen!A1:B1", "updated_rows": 1}
    assert sheets.requests[0].path.endswith("/values/A1:append")


async def test_a_sheet_the_spreadsheet_lacks_is_googles_400(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    # What the old default `Sheet1` did on this spreadsheet.
    envelope = await append(sheets, http, range="Sheet1")
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.error.details is not None
    assert envelope.error.details["status_code"] == 400
    assert "Unable to parse range: Sheet1" in envelope.error.message
    assert envelope.attempts == 1


async def test_strings_as_data_keeps_formulas_out(sheets: SheetsStandIn, http: HttpClient) -> None:
    row = ['=HYPERLINK("http://evil")', "+1+1", "-2", "@x", "plain", 3]
    assert (await append(sheets, http, values=row)).status == "success"
    assert sheets.appends[0].formulas == ('=HYPERLINK("http://evil")',), "USER_ENTERED default"
    assert (await append(sheets, http, values=row, strings_as_data=True)).status == "success"
    sent = sheets.appends[1]
    assert sent.formulas == ()
    assert sent.values == [['\'=HYPERLINK("http://evil")', "'+1+1", "'-2", "'@x", "plain", 3]]
    # RAW never evaluates anything, so nothing needs escaping (an apostrophe would be stored).
    raw = await append(sheets, http, values=row, strings_as_data=True, value_input_option="RAW")
    assert raw.status == "success" and sheets.appends[2].values == [row]


async def test_permission_denied_is_a_permanent_upstream_error(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    sheets.forbidden.add(SHEET_ID)
    envelope = await append(sheets, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.error.details == {
        "status_code": 403,
        "provider_code": "PERMISSION_DENIED",
        "message": "The caller does not have permission",
    }
    assert envelope.attempts == 1


async def test_a_quota_429_waits_for_the_next_window(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    sheets.rate_limit_next(3)  # no Retry-After, as Google answers a per-minute quota
    sleeps = Sleeps()
    envelope = await append(sheets, http, sleeps)
    assert envelope.status == "success" and envelope.attempts == 4
    assert [int(d) for d in sleeps.delays] == [4, 8, 16]
    assert len(sheets.appends) == 1


async def test_the_quota_wait_covers_a_whole_minute_past_the_retry_budget(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    sheets.rate_limit_next(4)
    sleeps = Sleeps()
    envelope = await append(sheets, http, sleeps)
    assert envelope.status == "success", envelope.error
    # 4 + 8 + 16 + 32 s (and jitter): a minute's window, past the 30 s retry budget.
    assert 60 <= sum(sleeps.delays) <= 65


async def test_past_the_retry_budget_the_rate_limit_slots_are_still_waited_for(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    # The engine's default Sheets limits (1/s per spreadsheet, 60/min per project, 300/min in
    # all): the fifth attempt, 60 s in, must still get its slots, not "no slot within -30 s".
    sheets.rate_limit_next(4)
    sleeps = Sleeps()
    # On the runner's clock: a 429 pauses the quota's key until the retry's moment.
    limits = default_registry().read_rates()
    limiter = RateLimiter(limits, clock=sleeps.clock, sleep=sleeps)
    envelope = await append(sheets, http, sleeps, limiter=limiter)
    assert envelope.status == "success", envelope.error
    assert envelope.attempts == 5 and len(sheets.appends) == 1


async def test_the_quota_wait_stops_at_the_deadline(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    sheets.rate_limit_next(5)
    sleeps = Sleeps()
    deadline = sleeps.start + timedelta(seconds=10)
    envelope = await append(sheets, http, sleeps, deadline=deadline)
    assert envelope.error is not None and envelope.error.code is ErrorCode.RATE_LIMITED
    assert [int(d) for d in sleeps.delays] == [4], "the 8 s wait would pass the deadline"


async def test_the_quota_wait_is_a_setting(sheets: SheetsStandIn, http: HttpClient) -> None:
    sheets.rate_limit_next(5)
    sleeps = Sleeps()
    settings = action_settings(
        SheetsSettings(google_sheets_api_url=sheets.base_url, sheets_quota_wait_s=14.5)
    )
    envelope = await append(sheets, http, sleeps, settings=settings)
    assert envelope.error is not None and envelope.error.code is ErrorCode.RATE_LIMITED
    assert [int(d) for d in sleeps.delays] == [4, 8]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_5xx_is_outcome_unknown_and_not_repeated(
    sheets: SheetsStandIn, http: HttpClient, status: int
) -> None:
    sheets.fail_next(1, status, body={"error": {"code": status, "status": "INTERNAL"}})
    envelope = await append(sheets, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.OUTCOME_UNKNOWN
    assert envelope.error.details is not None and envelope.error.details["sent"] is True
    assert len(sheets.requests) == 1


async def test_an_append_answered_503_after_it_was_written_is_not_repeated(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    # Google: UNAVAILABLE is "not always safe to retry non-idempotent operations".
    sheets.fail_after_applying(1, 503, body={"error": {"code": 503, "status": "UNAVAILABLE"}})
    envelope = await append(sheets, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.OUTCOME_UNKNOWN
    assert envelope.attempts == 1 and sheets.rows[SHEET_ID] == [["ada", 1]], "one row"


async def test_a_429_pauses_the_quota_it_names_for_every_append(
    sheets: SheetsStandIn, http: HttpClient
) -> None:
    limiter = RateLimiter(clock=lambda: 0.0, sleep=Sleeps())  # the pause's moment, held still
    sheets.rate_limit_next(1, retry_after=20)
    first = await append(sheets, http, limiter=limiter)
    assert first.status == "success" and first.attempts == 2
    # The quota was per user: the project's appends wait out the 20 s, another project's not.
    assert limiter.reserve([RateKey("google_sheets.project", "demo")]) == pytest.approx(20)
    assert limiter.reserve([RateKey("google_sheets.project", "other")]) == 0.0


def test_the_per_cloud_project_quota_is_on_by_default() -> None:
    limits = default_registry().read_rates()
    total, project = limits["google_sheets.total"], limits["google_sheets.project"]
    assert total is not None and project is not None
    assert total.count == 300
    assert total.period_s == 60
    assert project.count == 60
