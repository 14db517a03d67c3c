"""What may go into a request header, checked before anything is sent.

A header name is an RFC 9110 token. A value may hold any character but line breaks, NUL and
the other control characters (a tab aside), and no leading or trailing space (a receiver strips
those, so what it reads would differ from what was meant). Non-ASCII values are sent as UTF-8
bytes (RFC 9110 5.5 lets a field carry them as opaque octets); a header that must stay ASCII
is the caller's to encode (`actions.builtin.request_id_header` does the request id). A violation is
the request's own fault: `InvalidRequest`, raised before a connection is made, and the message
never holds the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from actions.http.errors import InvalidRequest

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Control characters other than HTAB, and DEL; plus the Unicode line separators a receiver
# decoding UTF-8 might split on.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def has_control_characters(value: str) -> bool:
    return _UNSENDABLE.search(value) is not None


def is_sendable_value(value: str) -> bool:
    if has_control_characters(value):
        return False
    return value == value.strip(" \t")


def _label(name: str) -> str:
    # A name is only echoed when it is a token (nothing hidden can ride in it).
    return repr(name[:64]) if is_token(name) else "a header name"


def checked_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
) -> list[tuple[str, str]]:
    """The headers as (name, value) pairs, or `InvalidRequest` naming the first bad one."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    checked: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str) or not is_token(name):
            raise InvalidRequest(f"header {_label(str(name))} is not a valid HTTP field name")
        if not isinstance(value, str) or not is_sendable_value(value):
            raise InvalidRequest(
                f"the value of header {_label(name)} has a line break, a control character "
                "or leading/trailing space"
            )
        checked.append((name, value))
    return checked
