"""Credentials from environment variables (`VAULT_BACKEND=env`), for local development only.

`PURAIFY_CRED_<PROJECT>__<SERVICE>`, each name encoded one way (injective, so two projects or
two (project, service) pairs never read the same variable):

- a lower-case letter is upper-cased, a digit stays: `demo` + `slack` -> `DEMO__SLACK`;
- every other character (`-`, `.`, `_`, an upper-case letter) is `_` and its two upper-case
  hex digits, like percent-encoding with `_` for `%`: `-` -> `_2D`, `.` -> `_2E`, `_` -> `_5F`,
  `A` -> `_41`. So `demo-project` + `slack` -> `PURAIFY_CRED_DEMO_2DPROJECT__SLACK`.

An encoded name never holds `__` (an escape's `_` is always followed by a hex digit), so the
first `__` is the separator: `x__y`/`slack` and `x`/`y__slack` are different variables. A name
outside `[A-Za-z0-9._-]` is refused (`invalid_params`). The variable that the engine looked
for is named in the `missing_credentials` message; when only the earlier spelling (every
non-alphanumeric character turned into `_`, which was ambiguous) is set, the message says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import SecretStr

from actions import InvalidParams, MissingCredentials
from actions.base import is_safe_path_segment

PREFIX = "PURAIFY_CRED_"
SEPARATOR = "__"
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_KEPT_ENCODED = frozenset(c.upper() for c in _KEPT)
_ESCAPE = re.compile(r"_([0-9A-F]{2})")


def encode_name(name: str) -> str:
    """One project or service name as it appears in the variable's name."""
    if not is_safe_path_segment(name):
        raise ValueError(f"not a name the env backend can map: {name!r}")
    return "".join(c.upper() if c in _KEPT else f"_{ord(c):02X}" for c in name)


def decode_name(encoded: str) -> str:
    """The inverse of `encode_name`: tells which name a variable belongs to (tests, operators)."""
    out: list[str] = []
    i = 0
    while i < len(encoded):
        if _ESCAPE.match(encoded, i):
            out.append(chr(int(encoded[i + 1 : i + 3], 16)))
            i += 3
        elif encoded[i] in _KEPT_ENCODED:
            out.append(encoded[i].lower())
            i += 1
        else:
            raise ValueError(f"not an encoded name: {encoded!r}")
    name = "".join(out)
    if not is_safe_path_segment(name):
        raise ValueError(f"not an encoded name: {encoded!r}")
    return name


def variable_name(project: str, service: str) -> str:
    return f"{PREFIX}{encode_name(project)}{SEPARATOR}{encode_name(service)}"


def parse_variable_name(variable: str) -> tuple[str, str]:
    """(project, service) of a variable name: exists because the naming is injective."""
    if not variable.startswith(PREFIX):
        raise ValueError(f"not a credential variable: {variable!r}")
    project, sep, service = variable[len(PREFIX) :].partition(SEPARATOR)
    if not sep:
        raise ValueError(f"no {SEPARATOR!r} between project and service: {variable!r}")
    return decode_name(project), decode_name(service)


def legacy_variable_name(project: str, service: str) -> str:
    """The spelling used before the encoding was made injective: read by nothing, only hinted."""

    def part(name: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", name.upper())

    return f"{PREFIX}{part(project)}{SEPARATOR}{part(service)}"


class EnvCredentials:
    """Reads the variable at every fetch, so a changed value is seen once the cache expires."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def fetch(self, project: str, service: str) -> SecretStr:
        try:
            name = variable_name(project, service)
        except ValueError:
            raise InvalidParams(
                f"not a valid project/service name: {project!r}/{service!r}"
            ) from None
        value = self._environ.get(name, "")
        if not value:
            raise MissingCredentials(
                self._missing_message(project, service, name), details={"service": service}
            )
        return SecretStr(value)

    def _missing_message(self, project: str, service: str, name: str) -> str:
        message = f"no {service} credential for project {project!r} (set {name})"
        legacy = legacy_variable_name(project, service)
        if legacy != name and self._environ.get(legacy):
            # Not read: that spelling is shared by several projects (demo-project, demo_project,
            # DEMO.Project), so reading it could hand one project another's credential.
            message += f"; {legacy} is set but no longer read (ambiguous spelling): rename it"
        return message
