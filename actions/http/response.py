"""An HTTP answer, read whole (up to the body cap) before the caller sees it."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    # Case-insensitive (`headers["content-type"]` finds `Content-Type`); a repeated header
    # shows its first value on lookup, every value in `header_items`.
    headers: Mapping[str, str]
    # The decoded body (content-encoding undone), at most the cap it was read with.
    body: bytes
    # True when the upstream sent more than the cap: `body` is its first `cap` bytes.
    truncated: bool = False
    url: str = ""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def header_items(self) -> list[tuple[str, str]]:
        return list(self.headers.items())

    @property
    def charset(self) -> str | None:
        """The `charset` parameter of Content-Type, if any (lower case)."""
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"').lower()
        return None

    def text(self, errors: str = "replace") -> str:
        """The body as text, in its declared charset (UTF-8 if none or unknown)."""
        charset = self.charset or "utf-8"
        try:
            return self.body.decode(charset, errors)
        except LookupError:
            return self.body.decode("utf-8", errors)

    def json(self) -> Any:
        """The body parsed as JSON; ValueError if it is not JSON."""
        return jsonlib.loads(self.body)
