"""Secret redaction: no token the engine holds can be rendered anywhere it writes.

Two nets. By value: every secret the engine learns (Vault tokens, its own passwords) is
registered here, and any occurrence in any text it writes (log lines, envelopes, dead-letter
headers) is replaced. By name: fields called like credentials are masked whatever they hold.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus

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
            self._secrets.update(s for s in spellings(secret) if len(s) >= MIN_SECRET_LENGTH)
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
        # Exact types first: this runs for every field of every log event (the hot path).
        kind = type(value)
        if kind is str:
            return self.scrub(value) if self._pattern is not None else value
        if value is None or kind in _SCALARS:
            return value
        if kind is dict:
            return self._scrub_dict(value, by_name)
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, bool | int | float):
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

    def _scrub_dict(self, value: dict[Any, Any], by_name: bool) -> dict[str, Any]:
        """`scrub_value` of a dict, unrolled: a log event is a flat dict of scalars."""
        scrub = self.scrub if self._pattern is not None else None
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            safe_name = scrub(name) if scrub else name
            if by_name and item is not None and is_sensitive_name(name):
                result[safe_name] = MASK
            elif item is None or type(item) in _SCALARS:
                result[safe_name] = item
            elif type(item) is str:
                result[safe_name] = scrub(item) if scrub else item
            else:
                result[safe_name] = self.scrub_value(item, by_name=by_name)
        return result


def spellings(secret: str) -> set[str]:
    """Every way the engine or a library it uses may write `secret` into text: as is,
    JSON-escaped, as a Python repr (exception messages, tracebacks), URL-encoded (httpx logs
    URLs), and base64 (HTTP Basic credentials), the latter at each of the three alignments it
    can have inside a longer base64 text."""
    found = {
        secret,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }
    raw = secret.encode("utf-8", errors="surrogatepass")
    found.add(repr(raw)[2:-1])
    for offset in range(3):
        # The characters that depend on the secret's bytes alone: skip the ones mixing in a
        # byte before it, and the last group, which mixes in the bytes after it.
        whole = (offset + len(raw)) // 3 * 3 - offset
        if whole <= 0:
            continue
        padded = bytes(offset) + raw[:whole]
        skip = (0, 2, 3)[offset]
        found.add(base64.b64encode(padded).decode()[skip:])
        found.add(base64.urlsafe_b64encode(padded).decode()[skip:])
    return found


_SCALARS = frozenset({bool, int, float})


# Cached: log events reuse a few dozen field names, and the regex is most of the masking cost.
@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    return name not in _SAFE_NAMES and _SENSITIVE_NAME.search(name) is not None


# One per process: every place that learns a secret registers it here.
REDACTOR = SecretRedactor()
