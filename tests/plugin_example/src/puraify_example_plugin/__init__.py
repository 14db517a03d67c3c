"""An action that lives in its own package: `example_greet` logs a greeting and returns it.

It is rate-limited per person greeted, and declares that limit itself (`rate_limits`): the
engine reads `EXAMPLE_GREET_RATE_LIMIT` (default 2/s) without a line of engine code. Its own
setting, the greeting word (`EXAMPLE_GREETING`, default `Hello`), is declared the same way
(`settings_model`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from actions import (
    Action,
    ActionContext,
    ActionParams,
    ActionSettings,
    RateKey,
    RateLimitSpec,
    setting,
)

PER_NAME = RateLimitSpec(
    "example_greet.name",
    "EXAMPLE_GREET_RATE_LIMIT",
    "2/s",
    "`example_greet` greetings per person (same syntax as SLACK_RATE_LIMIT_PER_CHANNEL).",
)


class GreetSettings(ActionSettings):
    greeting: str = setting(
        "EXAMPLE_GREETING", "Hello", "The word `example_greet` greets with.", min_length=1
    )


class GreetParams(ActionParams):
    name: str = Field(min_length=1, max_length=100, description="Who to greet.")
    excited: bool = False


class Greet(Action[GreetParams]):
    name = "example_greet"
    params_model = GreetParams
    description = "Greets someone (an example plugin action)."
    rate_limits = (PER_NAME,)
    settings_model = GreetSettings

    def rate_keys(self, params: GreetParams, ctx: ActionContext) -> Sequence[RateKey]:
        return (RateKey(PER_NAME.name, f"{ctx.project}/{params.name}"),)

    async def run(self, params: GreetParams, ctx: ActionContext) -> Mapping[str, Any]:
        word = ctx.settings.get(GreetSettings).greeting
        greeting = f"{word}, {params.name}{'!' if params.excited else '.'}"
        ctx.log.info("example_greet.greeted", greeting=greeting)
        return {"greeting": greeting, "project": ctx.project}


ACTION = Greet()
