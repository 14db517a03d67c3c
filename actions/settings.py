"""Settings an action declares for itself (`Action.settings_model`): read from the environment
once at start-up, with the engine's, and handed to the action in its context. A plugin adds
its own settings the same way; the engine's settings know nothing of any action's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, cast

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def setting(env: str, default: Any, description: str, **constraints: Any) -> Any:
    """A field read from the environment variable `env` (and named so in `--help` and docs)."""
    return Field(
        default=default,
        validation_alias=AliasChoices(env),
        description=description,
        json_schema_extra={"env": env},
        **constraints,
    )


class ActionSettings(BaseSettings):
    """Base of an action's settings model: each field a `setting(...)`."""

    # An invalid value is named, never echoed: it may be a password or a URL holding one.
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        case_sensitive=True,
        hide_input_in_errors=True,
    )


S = TypeVar("S", bound=ActionSettings)


class ActionSettingsSet:
    """The settings the registered actions declared, one instance per model, as read."""

    def __init__(self, values: Iterable[ActionSettings] = ()) -> None:
        self._by_model: dict[type[ActionSettings], ActionSettings] = {type(v): v for v in values}

    def get(self, model: type[S]) -> S:
        value = self._by_model.get(model)
        if value is None:
            raise LookupError(
                f"{model.__name__} was not read: an action reading it declares it as its "
                "`settings_model`"
            )
        return cast(S, value)

    def __iter__(self) -> Any:
        return iter(self._by_model.values())
