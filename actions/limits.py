"""Limits on JSON the engine accepts or relays, so every envelope can still be rendered."""

from __future__ import annotations

import json
import re
from typing import Any

# pydantic refuses to serialise deeper than 255 levels; requests and relayed bodies stay far below.
MAX_JSON_DEPTH = 64

# A JSON string escape of a UTF-16 surrogate (`\ud800`…`\udfff`). Only when the text holds one
# can a decoded string hold a lone surrogate, which no UTF-8 output (Kafka, stdout) can carry.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# The same in JSON bytes, plus a surrogate written raw (CESU-8 style: ED A0..BF), which
# `json.loads` of bytes decodes with "surrogatepass".
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `value` nests objects/arrays more than `limit` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def may_hold_surrogates(text: str) -> bool:
    """Cheap pre-check on JSON text: False means its decoded strings are all valid Unicode."""
    return _SURROGATE_ESCAPE.search(text) is not None


def holds_lone_surrogate(value: Any) -> bool:
    """True when a string (or an object key) inside decoded JSON is not valid Unicode text: a
    lone surrogate from an escape like `\\ud800` that pairs with nothing (iterative)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _is_unicode_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _is_unicode_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_lone_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings and keys written as the six characters
    of its JSON escape (`\\ud800`): what the upstream sent stays readable in the envelope,
    which only valid Unicode can carry. Valid text is returned unchanged (the same object)."""
    if isinstance(value, str):
        if _is_unicode_text(value):
            return value
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    if isinstance(value, dict):
        return {escape_lone_surrogates(k): escape_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_lone_surrogates(item) for item in value]
    return value


def upstream_json(raw: bytes) -> Any:
    """An upstream's JSON body, decoded; its lone surrogates kept escaped, not lost. Raises
    ValueError (or RecursionError) like `json.loads` for what is not JSON."""
    parsed = json.loads(raw)
    if _SURROGATE_BYTES.search(raw) is not None and holds_lone_surrogate(parsed):
        return escape_lone_surrogates(parsed)
    return parsed
