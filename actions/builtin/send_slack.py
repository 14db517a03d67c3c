"""`send_slack`: Slack Web API `chat.postMessage` with the project's `slack` token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, upstream_of
from actions.errors import (
    CredentialRejected,
    UpstreamError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
)
from actions.ratelimit import RateKey, RateLimitSpec

SERVICE = "slack"
# Slack allows chat.postMessage about one message per second per channel, short bursts aside.
CHANNEL_LIMIT = "slack.channel"
CHANNEL_RATE = RateLimitSpec(
    CHANNEL_LIMIT,
    "SLACK_RATE_LIMIT_PER_CHANNEL",
    "1/s",
    "`send_slack` messages per channel (per project), evenly spaced: `N/s`, `N/min` or "
    "`N/h`, optionally `burst B`; `off` for none.",
)
# Slack answers HTTP 200 with ok:false for API errors; these codes mean the token is bad, which a
# rotation in the Vault may already have fixed.
_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# Slack's own transient failures (documented for chat.postMessage).
_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SendSlackParams(ActionParams):
    channel: str = Field(min_length=1, max_length=256, description="Channel name (#general) or ID.")
    message: str = Field(min_length=1, max_length=40000, description="Message text.")
    thread_ts: str | None = Field(default=None, max_length=64)
    blocks: list[dict[str, Any]] | None = Field(default=None, max_length=50)


class SendSlack(Action[SendSlackParams]):
    name = "send_slack"
    params_model = SendSlackParams
    service = SERVICE
    description = "Posts a message with Slack chat.postMessage."
    rate_limits = (CHANNEL_RATE,)

    def rate_keys(self, params: SendSlackParams, ctx: ActionContext) -> Sequence[RateKey]:
        # A channel name is only unique within a workspace, and each project has its own.
        return (RateKey(CHANNEL_LIMIT, f"{ctx.project}/{params.channel}"),)

    def upstream(self, params: SendSlackParams, ctx: ActionContext) -> str | None:
        return upstream_of(ctx.config.slack_api_url)

    async def run(self, params: SendSlackParams, ctx: ActionContext) -> Mapping[str, Any]:
        token = await ctx.token(SERVICE)
        body: dict[str, Any] = {"channel": params.channel, "text": params.message}
        if params.thread_ts is not None:
            body["thread_ts"] = params.thread_ts
        if params.blocks is not None:
            body["blocks"] = params.blocks
        try:
            response = await ctx.http.post(
                f"{ctx.config.slack_api_url.rstrip('/')}/chat.postMessage",
                json=body,
                headers={"Authorization": f"Bearer {token.get_secret_value()}"},
            )
        except httpx.HTTPError as exc:
            raise error_for_exception("Slack", exc) from None
        if response.status_code == 401:
            raise CredentialRejected(
                SERVICE, "Slack rejected the token", details={"status_code": 401}
            )
        error = error_for_status("Slack", response)
        if error is not None:
            raise error
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamUnavailable("Slack answered with a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamUnavailable("Slack answered with an unexpected body")
        if answer.get("ok") is not True:
            code = str(answer.get("error", "unknown_error"))
            details = {"provider_code": code}
            if code in _AUTH_ERRORS:
                raise CredentialRejected(
                    SERVICE, f"Slack rejected the token: {code}", details=details
                )
            if code in _TRANSIENT_ERRORS:
                raise UpstreamUnavailable(f"Slack error: {code}", details=details)
            raise UpstreamError(f"Slack error: {code}", details=details)
        return {"slack_message_id": answer.get("ts"), "channel": answer.get("channel")}


ACTION = SendSlack()
