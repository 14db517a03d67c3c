"""The registry of actions: built-ins (one module each in `actions.builtin`) and plugins.

Adding a built-in action is adding one file to `actions/builtin/` that defines `ACTION`.
A separate package adds one through the `puraify.actions` entry-point group.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

import actions.builtin
from actions.base import Action
from actions.ratelimit import Rate, RateLimitSpec
from actions.settings import ActionSettings, ActionSettingsSet

PLUGIN_GROUP = "puraify.actions"

AnyAction = Action[Any]


class ActionRegistry:
    def __init__(self, actions: Iterable[AnyAction] = ()) -> None:
        self._actions: dict[str, AnyAction] = {}
        for action in actions:
            self.register(action)

    def register(self, action: AnyAction) -> None:
        if action.name in self._actions:
            raise ValueError(f"action {action.name!r} is registered twice")
        self._actions[action.name] = action

    def get(self, name: str) -> AnyAction | None:
        return self._actions.get(name)

    def names(self) -> list[str]:
        return sorted(self._actions)

    def __iter__(self) -> Iterator[AnyAction]:
        return iter(sorted(self._actions.values(), key=lambda a: a.name))

    def __len__(self) -> int:
        return len(self._actions)

    def rate_limits(self) -> list[RateLimitSpec]:
        """Every rate limit the registered actions declare, once each (by setting name). Two
        actions may share one limit; two different limits may not share a setting."""
        found: dict[str, RateLimitSpec] = {}
        for action in self:
            for spec in action.rate_limits:
                known = found.setdefault(spec.env, spec)
                if known.name != spec.name:
                    raise ValueError(
                        f"{spec.env} configures two limits ({known.name!r}, {spec.name!r})"
                    )
        return sorted(found.values(), key=lambda spec: spec.env)

    def read_rates(self) -> dict[str, Rate | None]:
        """Every declared rate limit as configured: its setting, else its default (None: off)."""
        rates: dict[str, Rate | None] = {}
        for spec in self.rate_limits():
            try:
                rates[spec.name] = Rate.parse(os.environ.get(spec.env, spec.default))
            except ValueError as exc:
                raise ValueError(f"{spec.env}: {exc}") from None
        return rates

    def settings_models(self) -> list[type[ActionSettings]]:
        """The settings models the registered actions declare, once each."""
        models = {action.settings_model for action in self if action.settings_model is not None}
        return sorted(models, key=lambda model: model.__name__)

    def read_settings(self) -> ActionSettingsSet:
        """Every declared settings model read from the environment; a bad value is a
        `ValueError` naming the model and the variable, never echoing the value."""
        values = []
        for model in self.settings_models():
            try:
                values.append(model())
            except ValidationError as exc:
                users = ", ".join(a.name for a in self if a.settings_model is model)
                problems = "; ".join(
                    f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
                )
                raise ValueError(f"settings of {users}: {problems}") from None
        return ActionSettingsSet(values)


def _as_action(obj: object, origin: str) -> AnyAction:
    if isinstance(obj, type) and issubclass(obj, Action):
        obj = obj()
    if not isinstance(obj, Action):
        raise TypeError(f"{origin} does not provide an Action (got {type(obj).__name__})")
    return obj


def builtin_actions() -> list[AnyAction]:
    found = []
    for module_info in pkgutil.iter_modules(actions.builtin.__path__):
        module = importlib.import_module(f"{actions.builtin.__name__}.{module_info.name}")
        if hasattr(module, "ACTION"):
            found.append(_as_action(module.ACTION, module.__name__))
    return found


def plugin_actions() -> list[AnyAction]:
    return [
        _as_action(entry.load(), f"entry point {entry.name!r}")
        for entry in entry_points(group=PLUGIN_GROUP)
    ]


def default_registry() -> ActionRegistry:
    return ActionRegistry([*builtin_actions(), *plugin_actions()])
