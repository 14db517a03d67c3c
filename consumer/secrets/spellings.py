"""Every way a secret may be written into text the engine relays or writes.

A third party that reflects a token (an echo endpoint, an error page quoting the request), a
library that logs a URL or a header, and the engine's own JSON all change how the token's
characters look. Redaction matches all of these spellings, not only the raw value.
"""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

_PERCENT_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def spellings(secret: str) -> set[str]:
    """The secret as is; JSON-escaped (ASCII-only and not, and with `/` written `\\/` as PHP
    and some Java encoders do); as a Python repr (exception messages, tracebacks) and a bytes
    repr; HTML-escaped (an error page quoting it); URL-encoded (upper- and lower-case hex,
    `+` for spaces); and base64, standard and URL-safe, at each of the three alignments the
    secret can have inside a longer base64 text (HTTP Basic credentials)."""
    json_ascii = json.dumps(secret)[1:-1]
    json_text = json.dumps(secret, ensure_ascii=False)[1:-1]
    found = {
        secret,
        json_text,
        json_ascii,
        json_text.replace("/", "\\/"),
        json_ascii.replace("/", "\\/"),
        repr(secret)[1:-1],
        html.escape(secret, quote=False),
        html.escape(secret, quote=True),
        html.escape(secret, quote=True).replace("&#x27;", "&#39;"),
    }
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        found.add(encoded)
        found.add(_PERCENT_ESCAPE.sub(lambda m: m.group(0).lower(), encoded))
    raw = secret.encode("utf-8", errors="surrogatepass")
    found.add(repr(raw)[2:-1])
    found.update(_base64_spellings(raw))
    return found


def _base64_spellings(raw: bytes) -> set[str]:
    found: set[str] = set()
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
    found.discard("")
    return found
