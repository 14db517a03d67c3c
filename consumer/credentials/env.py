"""Credentials from environment variables (`VAULT_BACKEND=env`), for local development only.

`PURAIFY_CRED_<PROJECT>__<SERVICE>`: the names upper-cased, every character other than a
letter or digit turned into `_`, and a double underscore between project and service. So the
`slack` token of project `demo-project` is `PURAIFY_CRED_DEMO_PROJECT__SLACK`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import SecretStr

from actions import InvalidParams, MissingCredentials
from actions.base import is_safe_path_segment
from consumer.ops.redaction import REDACTOR

PREFIX = "PURAIFY_CRED_"


def variable_name(project: str, service: str) -> str:
    def part(name: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", name.upper())

    return f"{PREFIX}{part(project)}__{part(service)}"


class EnvCredentials:
    """Reads the variable at every fetch, so a changed value is seen once the cache expires."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def fetch(self, project: str, service: str) -> SecretStr:
        if not (is_safe_path_segment(project) and is_safe_path_segment(service)):
            raise InvalidParams(f"not a valid project/service name: {project!r}/{service!r}")
        name = variable_name(project, service)
        value = self._environ.get(name, "")
        if not value:
            raise MissingCredentials(
                f"no {service} credential for project {project!r} (set {name})",
                details={"service": service},
            )
        REDACTOR.add(value)
        return SecretStr(value)
