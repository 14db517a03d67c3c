"""`send_slack`: Slack Web API `chat.postMessage` with the project's `slack` token.

chat.postMessage has no idempotency key: once sent, a call is never sent again by us. Slack
answers API errors as HTTP 200 `{"ok": false, "error": <code>}`, classified as its method page
documents them (see `_slack_error`); an HTTP 5xx or a lost answer is `outcome_unknown`. Rate
limits: "one message per second per channel, while also maintaining a workspace-wide limit"
(api.slack.com/apis/rate-limits); a project's token is one workspace, so a 429 / `ratelimited`
pauses both the channel's and the workspace's keys for its Retry-After.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, upstream_of
from actions.errors import (
    ActionError,
    CredentialRejected,
    OutcomeUnknown,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from actions.http import HttpError, HttpResponse
from actions.ratelimit import RateKey, RateLimitSpec
from actions.settings import ActionSettings, setting

SERVICE = "slack"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# Slack allows chat.postMessage about one message per second per channel, short bursts aside.
CHANNEL_LIMIT = "slack.channel"
CHANNEL_RATE = RateLimitSpec(
    CHANNEL_LIMIT,
    "SLACK_RATE_LIMIT_PER_CHANNEL",
    "1/s",
    "`send_slack` messages per channel (per project), evenly spaced: `N/s`, `N/min` or "
    "`N/h`, optionally `burst B`; `off` for none.",
)
# Slack keeps a workspace-wide limit beside the per-channel one, without a published number: off
# by default, but a key all the same, which a 429 pauses (a project's token is one workspace).
WORKSPACE_LIMIT = "slack.workspace"
WORKSPACE_RATE = RateLimitSpec(
    WORKSPACE_LIMIT,
    "SLACK_RATE_LIMIT_PER_WORKSPACE",
    "off",
    "`send_slack` messages per project (one Slack workspace), all channels together (same "
    "syntax); a 429 pauses it whatever its setting.",
)
# Slack's documented pace when it says `rate_limited` without a Retry-After: 1 message/s.
SLACK_PACE_S = 1.0
# Slack answers HTTP 200 with ok:false for API errors; these codes mean the token is bad, which a
# rotation in the Vault may already have fixed.
_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# Documented as "did nothing, ask again later": retried after Retry-After or Slack's pace.
_RATE_ERRORS = frozenset({"ratelimited", "rate_limited"})
_TRY_LATER_ERRORS = frozenset(
    {
        "team_added_to_org",  # "intermittently unavailable" while a workspace joins an org
        # "The workspace is undergoing an enterprise migration and will not be available until
        # migration is complete": nothing was posted, and it ends.
        "org_login_required",
        "service_unavailable",  # "the service is temporarily unavailable"
        "request_timeout",  # "the POST data was either missing or truncated": not applied
    }
)
# Documented as "it's possible some aspect of the operation succeeded": never repeated.
_MAYBE_APPLIED_ERRORS = frozenset({"fatal_error", "internal_error"})
# Channel ids (public C…, private G…, direct D…) as Slack spells them.
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")


class ChannelIds:
    """Channel names a project used, mapped to the id Slack answered with, so that `#general`,
    `general` and `C024BE91L` spend one rate budget. Bounded: least recently used go first."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._max_entries = max_entries

    @staticmethod
    def _name(channel: str) -> str:
        return channel.strip().lstrip("#").lower()

    def keys(self, project: str, channel: str) -> list[str]:
        """The budget keys of `channel`: its id when known (or given), and its bare name
        while it is spelled as a name, so the calls made before the id was learned count."""
        if _CHANNEL_ID.fullmatch(channel):
            return [channel]
        name = self._name(channel)
        channel_id = self._ids.get((project, name))
        if channel_id is None:
            return [name]
        self._ids.move_to_end((project, name))
        return [name, channel_id]

    def learn(self, project: str, channel: str, channel_id: object) -> None:
        if not isinstance(channel_id, str) or not _CHANNEL_ID.fullmatch(channel_id):
            return
        if _CHANNEL_ID.fullmatch(channel):
            return
        self._ids[(project, self._name(channel))] = channel_id
        self._ids.move_to_end((project, self._name(channel)))
        while len(self._ids) > self._max_entries:
            self._ids.popitem(last=False)


class SendSlackParams(ActionParams):
    channel: str = Field(min_length=1, max_length=256, description="Channel name (#general) or ID.")
    message: str = Field(min_length=1, max_length=40000, description="Message text.")
    thread_ts: str | None = Field(default=None, max_length=64)
    blocks: list[dict[str, Any]] | None = Field(default=None, max_length=50)


class SlackSettings(ActionSettings):
    slack_api_url: str = setting(
        "SLACK_API_URL", "https://slack.com/api", "Slack Web API base URL."
    )
    slack_timeout_s: float = setting(
        "SLACK_TIMEOUT_S",
        # Slack documents no server time limit: the attempt's own 30 s.
        30.0,
        "How long `chat.postMessage`'s answer is awaited (the request's deadline bounds it too).",
        gt=0,
    )


class SendSlack(Action[SendSlackParams]):
    name = "send_slack"
    settings_model = SlackSettings
    params_model = SendSlackParams
    service = SERVICE
    description = "Posts a message with Slack chat.postMessage."
    rate_limits = (CHANNEL_RATE, WORKSPACE_RATE)

    def __init__(self) -> None:
        self.channel_ids = ChannelIds()

    def rate_keys(self, params: SendSlackParams, ctx: ActionContext) -> Sequence[RateKey]:
        # A channel name is only unique within a workspace, and each project has its own.
        return (
            *(
                RateKey(CHANNEL_LIMIT, f"{ctx.project}/{key}")
                for key in self.channel_ids.keys(ctx.project, params.channel)
            ),
            RateKey(WORKSPACE_LIMIT, ctx.project),
        )

    def upstream(self, params: SendSlackParams, ctx: ActionContext) -> str | None:
        return upstream_of(ctx.settings.get(SlackSettings).slack_api_url)

    async def run(self, params: SendSlackParams, ctx: ActionContext) -> Mapping[str, Any]:
        authorization = await ctx.credential_header(SERVICE)
        body: dict[str, Any] = {"channel": params.channel, "text": params.message}
        if params.thread_ts is not None:
            body["thread_ts"] = params.thread_ts
        if params.blocks is not None:
            body["blocks"] = params.blocks
        # chat.postMessage has no idempotency key: once sent, it is never sent again by us.
        ctx.attempt.sending(idempotent=False)
        try:
            response = await ctx.http.post(
                f"{ctx.settings.get(SlackSettings).slack_api_url.rstrip('/')}/chat.postMessage",
                json=body,
                # Slack warns `missing_charset` on JSON sent without one.
                headers={"Authorization": authorization, "Content-Type": JSON_CONTENT_TYPE},
                timeout_s=ctx.call_timeout_s(ctx.settings.get(SlackSettings).slack_timeout_s),
            )
        except HttpError as exc:
            raise error_for_exception("Slack", exc, idempotent=False) from None
        if response.status == 401:
            raise CredentialRejected(
                SERVICE, "Slack rejected the token", details={"status_code": 401}
            )
        error = error_for_status("Slack", response, idempotent=False)
        if isinstance(error, RateLimited):
            error.pause = tuple(self.rate_keys(params, ctx))
        if error is not None:
            raise error
        try:
            answer = response.json()
        except ValueError:
            raise OutcomeUnknown("Slack answered with a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise OutcomeUnknown("Slack answered with an unexpected body")
        self.channel_ids.learn(ctx.project, params.channel, answer.get("channel"))
        if answer.get("ok") is not True:
            error = _slack_error(str(answer.get("error", "unknown_error")), response)
            if isinstance(error, RateLimited):
                error.pause = tuple(self.rate_keys(params, ctx))
            raise error
        return {"slack_message_id": answer.get("ts"), "channel": answer.get("channel")}


def _slack_error(code: str, response: HttpResponse) -> ActionError:
    """Slack's `ok: false` codes, classified as chat.postMessage documents them."""
    details = {"provider_code": code}
    if code in _AUTH_ERRORS:
        return CredentialRejected(SERVICE, f"Slack rejected the token: {code}", details=details)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if code in _RATE_ERRORS:
        return RateLimited(
            f"Slack error: {code}", details=details, retry_after_s=retry_after or SLACK_PACE_S
        )
    if code in _TRY_LATER_ERRORS:
        return UpstreamUnavailable(
            f"Slack error: {code}", details=details, retry_after_s=retry_after or SLACK_PACE_S
        )
    if code in _MAYBE_APPLIED_ERRORS:
        return OutcomeUnknown(
            f"Slack error: {code} (Slack says part of the call may have succeeded; not repeated)",
            details=details,
        )
    return UpstreamError(f"Slack error: {code}", details=details)


ACTION = SendSlack()
