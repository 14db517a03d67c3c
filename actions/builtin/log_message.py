"""`log_message`: emit one log event at the requested level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from actions.base import ActionContext, ActionParams, SyncAction


class LogMessageParams(ActionParams):
    message: str = Field(max_length=65536)
    level: Literal["debug", "info", "warning", "error"] = "info"
    fields: dict[str, Any] = Field(default_factory=dict)


class LogMessage(SyncAction[LogMessageParams]):
    name = "log_message"
    params_model = LogMessageParams
    description = "Emits a log event (event `log_message`) at the requested level."

    def run_now(self, params: LogMessageParams, ctx: ActionContext) -> Mapping[str, Any]:
        # Caller fields stay nested under `fields` so they cannot overwrite event, level or ids.
        ctx.log.log(
            _LEVELS[params.level], "log_message", message=params.message, fields=params.fields
        )
        return {"logged": True}


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

ACTION = LogMessage()
