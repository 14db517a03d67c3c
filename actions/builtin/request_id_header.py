"""How a request id travels in an HTTP header (`Idempotency-Key`, `Puraify-Delivery`).

The contract allows any printable character in a `request_id` (`café-1`), but an HTTP header
value is ASCII. An id of printable ASCII is sent as it is, so today's receivers see what they
always saw. Any other id is sent as an RFC 8187 extended value: `UTF-8''` and the id's UTF-8
bytes, percent-encoded except RFC 8187's attr-chars (`café-1` -> `UTF-8''caf%C3%A9-1`). An
ASCII id that itself begins with `UTF-8''` (any case) is encoded too, so two different ids
never give one header value: the receiver's deduplication cannot merge two requests.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

EXTENDED_PREFIX = "UTF-8''"
# RFC 8187 attr-char: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" /
# "`" / "|" / "~" (quote() always keeps letters, digits and "_.-~").
_ATTR_CHAR_PUNCTUATION = "!#$&+^`|"


def _is_extended(value: str) -> bool:
    return value[: len(EXTENDED_PREFIX)].upper() == EXTENDED_PREFIX


def _sent_as_is(request_id: str) -> bool:
    # isascii + isprintable: exactly U+0020..U+007E, without building a set of the characters.
    return request_id.isascii() and request_id.isprintable() and not _is_extended(request_id)


def request_id_header_value(request_id: str) -> str:
    """The ASCII header value that stands for `request_id` (see the module's docstring)."""
    if _sent_as_is(request_id):
        return request_id
    return EXTENDED_PREFIX + quote(request_id, safe=_ATTR_CHAR_PUNCTUATION, encoding="utf-8")


def request_id_from_header_value(value: str) -> str:
    """What a receiver does to get the id back (the inverse, for tests and the README)."""
    if _is_extended(value):
        return unquote(value[len(EXTENDED_PREFIX) :], encoding="utf-8", errors="strict")
    return value
