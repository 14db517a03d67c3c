"""send_slack through the runner against the Slack stand-in: each documented `ok: false` case
classified as Slack documents it, and no message ever posted twice by our own retries."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from actions import RateKey
from actions.builtin.send_slack import CHANNEL_LIMIT, ChannelIds, SendSlack, SlackSettings
from actions.http import HttpClient
from actions.ratelimit import Rate, RateLimiter
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.standins import SlackStandIn
from tests.unit.support import FakeCredentials, action_settings, plain_client

CHANNELS = {"#general": "C024BE91L", "#private": "G0PRIVATE1", "#old": "C0ARCHIVED"}


@pytest.fixture(scope="module")
def slack_server() -> Iterator[SlackStandIn]:
    with SlackStandIn(channels=CHANNELS) as server:
        yield server


@pytest.fixture
def slack(slack_server: SlackStandIn) -> Iterator[SlackStandIn]:
    slack_server.clear()
    yield slack_server
    slack_server.delay_s = 0.0


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def runner(
    slack: SlackStandIn, http: HttpClient, sleep: Sleeps | None = None, **fields: Any
) -> ActionRunner:
    sleep = sleep or Sleeps()
    # A 429 pauses the limiter's keys: its waits are faked too (apart from the retry delays).
    fields.setdefault("limiter", RateLimiter(sleep=Sleeps()))
    return ActionRunner(
        registry=ActionRegistry([SendSlack()]),
        credentials=FakeCredentials(),
        http=http,
        egress_http=http,
        settings=action_settings(SlackSettings(slack_api_url=slack.base_url)),
        sleep=sleep,
        **fields,
    )


async def post(run: ActionRunner, channel: str = "#general") -> ResultEnvelope:
    request = ExecutionRequest.model_validate(
        {"action": "send_slack", "project": "demo", "params": {"channel": channel, "message": "m"}}
    )
    return await run.execute(request, "req-1", structlog.get_logger())


@pytest.mark.parametrize("code", ["rate_limited", "ratelimited"])
async def test_rate_limited_is_retried_after_retry_after(
    slack: SlackStandIn, http: HttpClient, code: str
) -> None:
    slack.error_next(1, code, retry_after=3)
    sleeps = Sleeps()
    envelope = await post(runner(slack, http, sleeps))
    assert envelope.status == "success" and envelope.attempts == 2
    assert sleeps.delays == [3.0]
    assert len(slack.messages) == 1


async def test_rate_limited_without_retry_after_waits_slacks_pace(
    slack: SlackStandIn, http: HttpClient
) -> None:
    slack.error_next(1, "rate_limited")
    sleeps = Sleeps()
    envelope = await post(runner(slack, http, sleeps))
    assert envelope.status == "success" and sleeps.delays == [1.0]


async def test_rate_limited_past_the_budget_is_rate_limited(
    slack: SlackStandIn, http: HttpClient
) -> None:
    slack.error_next(5, "rate_limited", retry_after=1)
    envelope = await post(runner(slack, http, retry=RetryPolicy(max_attempts=3)))
    assert envelope.error is not None and envelope.error.code is ErrorCode.RATE_LIMITED
    assert envelope.error.retryable and envelope.attempts == 3 and not slack.messages


@pytest.mark.parametrize("code", ["team_added_to_org", "org_login_required"])
async def test_a_workspace_joining_or_migrating_is_retried(
    slack: SlackStandIn, http: HttpClient, code: str
) -> None:
    # org_login_required: "The workspace is undergoing an enterprise migration and will not be
    # available until migration is complete": nothing was posted.
    slack.error_next(1, code)
    sleeps = Sleeps()
    envelope = await post(runner(slack, http, sleeps))
    assert envelope.status == "success" and envelope.attempts == 2 and sleeps.delays == [1.0]
    assert len(slack.messages) == 1


async def test_rate_limited_pauses_the_channel_and_the_workspace_for_every_request(
    slack: SlackStandIn, http: HttpClient
) -> None:
    sleeps = Sleeps()
    limiter = RateLimiter(sleep=sleeps)
    slack.rate_limit_next(1, retry_after=20)
    envelope = await post(runner(slack, http, sleeps, limiter=limiter))
    assert envelope.status == "success" and envelope.attempts == 2
    # Another channel of the same workspace waits too (Slack's workspace-wide limit).
    assert limiter.reserve([RateKey("slack.workspace", "demo")]) == pytest.approx(20, abs=0.5)
    assert limiter.reserve([RateKey(CHANNEL_LIMIT, "demo/general")]) == pytest.approx(20, abs=0.5)
    assert limiter.reserve([RateKey("slack.workspace", "other")]) == 0.0, "not another project"


async def test_json_is_sent_with_its_charset(slack: SlackStandIn, http: HttpClient) -> None:
    envelope = await post(runner(slack, http))
    assert envelope.status == "success"
    (request,) = slack.requests
    assert request.headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize("code", ["fatal_error", "internal_error"])
async def test_fatal_and_internal_errors_are_outcome_unknown_and_not_repeated(
    slack: SlackStandIn, http: HttpClient, code: str
) -> None:
    # Slack: "it's possible some aspect of the operation succeeded" -- here it did.
    slack.error_next(1, code, after_post=True)
    envelope = await post(runner(slack, http))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.OUTCOME_UNKNOWN and not envelope.error.retryable
    assert envelope.error.details == {"provider_code": code, "sent": True}
    assert envelope.attempts == 1
    assert len(slack.requests) == 1 and len(slack.messages) == 1, "posted once, never again"


@pytest.mark.parametrize(
    ("setup", "channel", "code"),
    [
        (lambda s: s.not_member.add("G0PRIVATE1"), "#private", "not_in_channel"),
        (lambda s: s.archived.add("C0ARCHIVED"), "#old", "is_archived"),
        (lambda s: setattr(s, "scopes", {"channels:read"}), "#general", "missing_scope"),
        (lambda s: None, "#nowhere", "channel_not_found"),
    ],
)
async def test_permanent_refusals_are_upstream_errors_at_once(
    slack: SlackStandIn, http: HttpClient, setup: Any, channel: str, code: str
) -> None:
    setup(slack)
    envelope = await post(runner(slack, http), channel)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.error.details == {"provider_code": code}
    assert envelope.attempts == 1 and not slack.messages


async def test_a_slow_answer_posts_once_and_ends_outcome_unknown(
    slack: SlackStandIn, http: HttpClient
) -> None:
    """The issue's reproduction: the stand-in answers after 4 s, the attempt timeout is 2 s
    (EXECUTION_ACTION_TIMEOUT_S=2). Before: 5 identical posts and upstream_unavailable."""
    slack.delay_s = 4.0
    run = runner(slack, http, attempt_timeout_s=2.0)
    run.sleep = asyncio.sleep  # real backoff: a retry, if any, would reach the stand-in
    envelope = await post(run)
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.OUTCOME_UNKNOWN
    assert envelope.error.details == {"sent": True}
    assert not envelope.error.retryable and envelope.attempts == 1
    # The stand-in posts when its 4 s are up; then room for a second post, were there one.
    await asyncio.to_thread(slack.wait_for_requests, 1)
    await asyncio.sleep(3.5)
    assert len(slack.requests) == 1
    assert len(slack.messages) == 1, "exactly one post"


async def test_a_refused_connection_is_retried_since_nothing_was_sent(
    http: HttpClient,
) -> None:
    with SlackStandIn() as server:
        url = server.base_url
    # The port is closed now: connect fails before a byte of the request is sent.
    run = ActionRunner(
        registry=ActionRegistry([SendSlack()]),
        credentials=FakeCredentials(),
        http=http,
        egress_http=http,
        settings=action_settings(SlackSettings(slack_api_url=url)),
        sleep=Sleeps(),
        retry=RetryPolicy(max_attempts=3),
    )
    envelope = await post(run)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.error.details == {"sent": False} and envelope.attempts == 3


async def test_one_channel_has_one_budget_whatever_its_spelling(
    slack: SlackStandIn, http: HttpClient
) -> None:
    action = SendSlack()
    limiter = RateLimiter({CHANNEL_LIMIT: Rate(1, 1.0)})
    run = ActionRunner(
        registry=ActionRegistry([action]),
        credentials=FakeCredentials(),
        http=http,
        egress_http=http,
        settings=action_settings(SlackSettings(slack_api_url=slack.base_url)),
        limiter=limiter,
    )
    started = time.monotonic()
    for channel in ("#general", "general", "C024BE91L"):
        assert (await post(run, channel)).status == "success"
    # The first answer taught the id: three posts to one channel are spaced by its 1/s budget.
    assert time.monotonic() - started >= 1.9
    arrivals = [r.received_at for r in slack.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_channel_ids_map_names_to_the_id_slack_answered() -> None:
    ids = ChannelIds(max_entries=2)
    assert ids.keys("p", "#General") == ids.keys("p", "general") == ["general"]
    assert ids.keys("p", "C024BE91L") == ["C024BE91L"]
    ids.learn("p", "#general", "C024BE91L")
    assert ids.keys("p", "general") == ids.keys("p", "#general") == ["general", "C024BE91L"]
    assert ids.keys("other-project", "#general") == ["general"], "names are per workspace"
    ids.learn("p", "#a", "C0000000A")
    ids.learn("p", "#b", "C0000000B")
    assert ids.keys("p", "#general") == ["general"], "bounded: the oldest is forgotten"
    ids.learn("p", "#c", "not an id")
    assert ids.keys("p", "#c") == ["c"]
