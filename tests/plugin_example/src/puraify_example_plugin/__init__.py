"""An action that lives in its own package: `example_greet` logs a greeting and returns it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from actions import Action, ActionContext, ActionParams


class GreetParams(ActionParams):
    name: str = Field(min_length=1, max_length=100, description="Who to greet.")
    excited: bool = False


class Greet(Action[GreetParams]):
    name = "example_greet"
    params_model = GreetParams
    description = "Greets someone (an example plugin action)."

    async def run(self, params: GreetParams, ctx: ActionContext) -> Mapping[str, Any]:
        greeting = f"Hello, {params.name}{'!' if params.excited else '.'}"
        ctx.log.info("example_greet.greeted", greeting=greeting)
        return {"greeting": greeting, "project": ctx.project}


ACTION = Greet()
