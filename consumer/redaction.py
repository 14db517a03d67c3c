"""Secret redaction: no token the engine holds can be rendered anywhere it writes.

Two nets. By value: every secret the engine learns (Vault tokens, its own passwords) is
registered here, and any occurrence in any text it writes (log lines, envelopes, dead-letter
headers) is replaced. By name: fields called like credentials are masked whatever they hold.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "[REDACTED]"
# Shorter values would mask ordinary words; no real token is this short.
MIN_SECRET_LENGTH = 6
_SENSITIVE_NAME = re.compile(
    r"(?i)(authorization|password|passwd|secret|token|api[_-]?key|cookie|credential)"
)
# Field names that contain a sensitive word but are metadata, not secrets.
_SAFE_NAMES = frozenset({"credential_service", "token_service"})


class SecretRedactor:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH or secret in self._secrets:
            return
        with self._lock:
            self._secrets.add(secret)
            # Also its JSON-escaped spelling, so serialized JSON text can be scrubbed directly.
            self._secrets.add(json.dumps(secret, ensure_ascii=False)[1:-1])
            self._secrets.add(json.dumps(secret)[1:-1])
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def scrub(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def scrub_value(self, value: Any, *, by_name: bool = True) -> Any:
        """Scrub strings inside a JSON-like structure; with `by_name`, also mask every field
        named like a secret (for log events; envelopes carry third-party data as it came)."""
        if isinstance(value, str):
            return self.scrub(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {
                self.scrub(str(key)): MASK
                if by_name and is_sensitive_name(str(key)) and item is not None
                else self.scrub_value(item, by_name=by_name)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_value(item, by_name=by_name) for item in value]
        # Anything else (an exception, a URL object) is rendered as text anyway: scrub that.
        return self.scrub(str(value))


def is_sensitive_name(name: str) -> bool:
    return name not in _SAFE_NAMES and _SENSITIVE_NAME.search(name) is not None


# One per process: every place that learns a secret registers it here.
REDACTOR = SecretRedactor()
