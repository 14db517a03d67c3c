"""Actions that exist only in tests: they observe order and concurrency, or fail on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from actions import Action, ActionContext, ActionParams
from actions.registry import ActionRegistry, builtin_actions


class CrashParams(ActionParams):
    pass


class Crash(Action[CrashParams]):
    """A bug in an action: the envelope must say internal_error and leak nothing."""

    name = "test_crash"
    params_model = CrashParams

    async def run(self, params: CrashParams, ctx: ActionContext) -> Mapping[str, Any]:
        raise RuntimeError("internal detail that must not leak: /etc/secret-path")


class RecordParams(ActionParams):
    key: str
    seq: int
    sleep_ms: int = 0


class Record(Action[RecordParams]):
    """Records the order in which it ran per key, and how many ran at once."""

    name = "test_record"
    params_model = RecordParams

    def __init__(self) -> None:
        self.order: dict[str, list[int]] = {}
        self.running = 0
        self.max_running = 0

    async def run(self, params: RecordParams, ctx: ActionContext) -> Mapping[str, Any]:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            self.order.setdefault(params.key, []).append(params.seq)
            await asyncio.sleep(params.sleep_ms / 1000)
        finally:
            self.running -= 1
        return {"key": params.key, "seq": params.seq}


def registry_with(*extra: Action[Any]) -> ActionRegistry:
    return ActionRegistry([*builtin_actions(), *extra])
