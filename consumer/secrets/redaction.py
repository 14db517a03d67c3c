"""Secret redaction: a record's outputs never carry a secret that record used, nor the engine's.

What is scrubbed of what
    A record's envelope, log events and dead-letter headers are scrubbed of the engine's own
    secrets (Kafka SASL password, Vault token, ...) and of the credentials THAT record fetched,
    not of every tenant's: another project's token never becomes a pattern in this one's
    outputs, so no tenant can damage another's by what it stores. Lifecycle and library logs
    outside a record are scrubbed of the engine's secrets.

Where
    On Python values before they are rendered, only inside string values (and header
    values): the engine's own fields (`request_id`, `status`, `level`, ...), the top-level
    keys and the JSON structure are never rewritten, whatever a credential holds
    (`request_id`, `","status":"`). Inside content (a relayed body, a log event's caller
    fields) a key that holds a secret is masked too, renamed `[REDACTED]#2` rather than merged
    if two would collide, so an echo of the token as a key leaks nothing and loses no entry.
    Every spelling of a secret (`consumer.secrets.spellings`) is matched. A string that ends in
    the first 4 or more characters of a spelling of the record's credentials (a body or
    message cut by a size cap in the middle of a reflected token) has that tail masked too, so
    a cut never leaves more than 3 characters of a credential.

The rule for credential values (`credential_problem`)
    A credential value shorter than `MIN_CREDENTIAL_LENGTH` (5) or longer than
    `MAX_CREDENTIAL_LENGTH` characters is refused (`missing_credentials`): the first would
    mask ordinary fragments of the project's own output and is no real token, the second
    would make building its automaton costly. Any other value, however common or low in
    entropy (`request_id`, `aaaaa`), can only mask text inside its own project's string
    values, by the two rules above. The engine's own secrets apply to everything; one shorter
    than 5 characters is not used as a pattern (an operator's choice, not a tenant's).

Cost
    Each secret gets its own Aho-Corasick automaton (Rust `aho-corasick` via the
    `ahocorasick-rs` wheel) over its spellings, built once when it is first held: O(its
    length), independent of how many secrets are held. Scrubbing a string searches the
    engine's automaton and one automaton per credential of the record (usually none or one):
    the cost does not grow with the number of tenants. A scope with nothing in it (no engine
    secret configured, no credential used) returns values untouched without walking them.

Lifetime
    Tenant secrets are reference-counted: the credential cache holds one reference per cached
    entry, and each record's scope one per credential it used, until the record's outputs are
    rendered (`RedactionScope.close`). A secret leaves the registry when both are gone, so an
    evicted or rotated credential stops costing anything, and one still in use is never
    dropped early.

API
    SECRETS.add_engine_secret(value)            the engine's own secret, for every output
    scope = SECRETS.scope()                     one record's scope (or cache.for_record())
    scope.add(secret) / scope.hold(value)       a credential the record used
    with scope.active(): ...                    log events (and library logs) of the record
    scope.scrub_value(value, by_name=False)     an envelope's content (data, error, ...)
    scope.scrub_event(event)                    a log event (engine fields kept, by-name masking)
    scope.scrub_text(text)                      a header value, a message
    scope.close()                               after the record's outputs are rendered
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from consumer.secrets.matching import Automaton, Secret, masked
from consumer.secrets.spellings import spellings

MASK = "[REDACTED]"
MIN_CREDENTIAL_LENGTH = 5
MAX_CREDENTIAL_LENGTH = 16_384
_SENSITIVE_NAME = re.compile(
    r"(?i)(authorization|password|passwd|secret|token|api[_-]?key|cookie|credential)"
)
# Field names that contain a sensitive word but are metadata, not secrets.
_SAFE_NAMES = frozenset({"credential_service", "token_service"})
# Fields of a log event that the engine fills with validated ids, names and codes: kept
# verbatim, so no credential value can rewrite them. (The event name is scrubbed like any
# text: a project whose credential is `action` masks its own event names, nobody else's.)
ENGINE_EVENT_FIELDS = frozenset(
    {
        "timestamp",
        "level",
        "service",
        "request_id",
        "action",
        "project",
        "partition",
        "offset",
        "traceparent",
        "error_code",
        "logger",
        "fallback_for",
    }
)
_SCALARS = frozenset({bool, int, float})


def credential_problem(value: str) -> str | None:
    """Why `value` cannot be used as a credential (None: it can). See the module docstring."""
    if len(value) < MIN_CREDENTIAL_LENGTH:
        return f"is shorter than {MIN_CREDENTIAL_LENGTH} characters"
    if len(value) > MAX_CREDENTIAL_LENGTH:
        return f"is longer than {MAX_CREDENTIAL_LENGTH} characters"
    return None


class SecretRegistry:
    """The engine's own secrets, and the tenant secrets held by the cache or a record."""

    def __init__(self) -> None:
        self._engine_values: list[str] = []
        self._engine = Automaton(())
        self.has_engine_secrets = False
        self._held: dict[str, Secret] = {}
        self.built = 0  # automata built for tenant secrets (tests count the work per add)
        self.engine_scope = RedactionScope(self)

    # -- the engine's own secrets: for every output, for the life of the process ----------

    def add_engine_secret(self, value: str) -> None:
        """Rebuilds the engine's automaton: this happens at start-up (and when a token file
        is rotated), never per record or per tenant."""
        if len(value) < MIN_CREDENTIAL_LENGTH or value in self._engine_values:
            return
        self._engine_values.append(value)
        self._engine = Automaton(s for v in self._engine_values for s in spellings(v))
        self.has_engine_secrets = True

    @property
    def engine_automaton(self) -> Automaton:
        return self._engine

    # -- tenant secrets: reference-counted --------------------------------------------------

    def hold(self, value: str) -> Secret:
        """A reference to `value`'s secret, built on first use (O(its length))."""
        secret = self._held.get(value)
        if secret is None:
            secret = self._held[value] = Secret(value)
            self.built += 1
        secret.refs += 1
        return secret

    def retain(self, secret: Secret) -> None:
        secret.refs += 1
        self._held.setdefault(secret.value, secret)

    def release(self, secret: Secret) -> None:
        secret.refs -= 1
        if secret.refs <= 0 and self._held.get(secret.value) is secret:
            del self._held[secret.value]

    def holds(self, value: str) -> bool:
        return value in self._held

    def __len__(self) -> int:
        return len(self._held)

    def scope(self) -> RedactionScope:
        return RedactionScope(self)

    def scrub(self, text: str) -> str:
        """`text` scrubbed of the engine's own secrets (for outputs that belong to no record)."""
        return self.engine_scope.scrub_text(text)


_CURRENT: contextvars.ContextVar[RedactionScope | None] = contextvars.ContextVar(
    "redaction_scope", default=None
)


class RedactionScope:
    """What one record's outputs are scrubbed of: the engine's secrets and its credentials."""

    __slots__ = ("_registry", "_secrets")

    def __init__(self, registry: SecretRegistry) -> None:
        self._registry = registry
        self._secrets: list[Secret] = []

    def add(self, secret: Secret) -> None:
        """The record used this credential: keep it held until `close()`."""
        if all(held is not secret for held in self._secrets):
            self._registry.retain(secret)
            self._secrets.append(secret)

    def hold(self, value: str) -> Secret:
        """`value` is a secret of this record (built if the registry does not hold it yet)."""
        for held in self._secrets:
            if held.value == value:
                return held
        secret = self._registry.hold(value)
        self._secrets.append(secret)
        return secret

    def close(self) -> None:
        secrets, self._secrets = self._secrets, []
        for secret in secrets:
            self._registry.release(secret)

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return tuple(self._secrets)

    def __bool__(self) -> bool:
        """False when there is nothing to scrub of (the fast path)."""
        return bool(self._secrets) or self._registry.has_engine_secrets

    def active(self) -> _Active:
        """The scope of log events emitted (and library logs written) inside the block."""
        return _Active(self)

    def _may_hit(self, texts: list[str]) -> bool:
        """Whether any of `texts` may need masking, in one search per automaton over all of
        them: the engine's spellings, and each credential's heads (the first HEAD characters
        of its spellings, which every occurrence and every cut tail of 4+ characters starts
        with). False is certain; True sends the value down the exact path."""
        if not texts:
            return False
        joined = texts[0] if len(texts) == 1 else "\x00".join(texts)
        if self._registry.engine_automaton.spans(joined):
            return True
        return any(secret.heads.spans(joined) for secret in self._secrets)

    def scrub_text(self, text: str) -> str:
        engine = self._registry.engine_automaton
        spans = engine.spans(text)
        for secret in self._secrets:
            spans.extend(secret.automaton.spans(text))
            cut = secret.cut_tail(text)
            if cut is not None:
                spans.append((cut, len(text)))
        return masked(text, spans, MASK) if spans else text

    def scrub_value(self, value: Any, *, by_name: bool = False) -> Any:
        """Strings inside a JSON-like value scrubbed (keys kept); with `by_name`, also every
        field named like a secret masked (log events; envelopes relay third-party data as it
        came). Anything else (an exception, a URL object) is rendered as text: scrubbed so."""
        active = bool(self)
        if not by_name and not active:
            return value
        texts: list[str] = []
        if _collect(value, texts, by_name) and not (active and self._may_hit(texts)):
            return value  # nothing to mask: the value itself, not a copy
        return self._walk(value, by_name, active)

    def scrub_event(self, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A log event: the engine's own fields kept verbatim, the rest scrubbed by value and
        by name. An event with nothing to mask is returned as it is (the common case)."""
        active = bool(self._secrets) or self._registry.has_engine_secrets
        texts: list[str] = []
        # One pass to see whether anything needs masking; written out, not with `_collect`:
        # this runs for every log event, and most are flat dicts of strings and numbers.
        for key, item in event.items():
            if item is None or key in ENGINE_EVENT_FIELDS:
                continue
            kind = type(item)
            if kind is str:
                if is_sensitive_name(key):
                    break
                if active:
                    texts.append(item)
            elif kind in _SCALARS:
                if is_sensitive_name(key):
                    break
            elif (
                type(key) is not str
                or is_sensitive_name(key)
                # An empty object holds nothing (log_message's `fields`, most of the time).
                or ((item or kind is not dict) and not _collect(item, texts, True))
            ):
                break
        else:
            if not active or not self._may_hit(texts):
                return event
        result: dict[str, Any] = {}
        for key, item in event.items():
            name = key if type(key) is str else str(key)
            kind = type(item)
            if item is None or name in ENGINE_EVENT_FIELDS:
                result[name] = item
            elif is_sensitive_name(name):
                result[name] = MASK
            elif kind in _SCALARS:
                result[name] = item
            elif kind is str:
                result[name] = self.scrub_text(item) if active else item
            else:
                result[name] = self._walk(item, True, active)
        return result

    def _walk_mapping(self, value: Mapping[Any, Any], by_name: bool, active: bool) -> Any:
        """Nested objects are content (a relayed body, caller fields): a key holding a secret
        is masked too, renamed rather than merged when two masked keys would collide."""
        result: dict[Any, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else str(key)
            if by_name and item is not None and is_sensitive_name(name):
                scrubbed: Any = MASK
            else:
                scrubbed = self._walk(item, by_name, active)
            out_key = key
            if active and type(key) is str:
                safe = self.scrub_text(key)
                if safe != key:
                    out_key = _renamed(safe, result) if safe in result or safe in value else safe
            result[out_key] = scrubbed
        return result

    def _walk(self, value: Any, by_name: bool, active: bool) -> Any:
        kind = type(value)
        if kind is str:
            return self.scrub_text(value) if active else value
        if value is None or kind in _SCALARS:
            return value
        if isinstance(value, Mapping):
            return self._walk_mapping(value, by_name, active)
        if isinstance(value, list | tuple | set | frozenset):
            return [self._walk(item, by_name, active) for item in value]
        if isinstance(value, str):
            return self.scrub_text(str(value)) if active else value
        if isinstance(value, bool | int | float):
            return value
        # Anything else is rendered as text: in a log event always (scrubbed), in an envelope
        # by pydantic, its own way, unless the text holds a secret (a datetime never does).
        text = str(value)
        scrubbed = self.scrub_text(text) if active else text
        return scrubbed if by_name or scrubbed is not text else value


def _collect(value: Any, texts: list[str], by_name: bool) -> bool:
    """Gather the strings (keys too) of a JSON-like value into `texts`. False when the value
    needs the exact walk whatever it holds: an object that is rendered as text, or (with
    `by_name`) a field named like a secret."""
    kind = type(value)
    if kind is str:
        texts.append(value)
        return True
    if value is None or kind in _SCALARS:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if by_name and item is not None and is_sensitive_name(key):
                return False
            texts.append(key)
            if not _collect(item, texts, by_name):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_collect(item, texts, by_name) for item in value)
    return False


def _renamed(key: str, taken: Mapping[str, Any]) -> str:
    """A masked key that does not collide with one already in the object."""
    number = 2
    while f"{key}#{number}" in taken:
        number += 1
    return f"{key}#{number}"


class _Active:
    """`RedactionScope.active`'s block (a class, not a generator: one per record)."""

    __slots__ = ("_scope", "_token")

    def __init__(self, scope: RedactionScope) -> None:
        self._scope = scope

    def __enter__(self) -> RedactionScope:
        self._token = _CURRENT.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        _CURRENT.reset(self._token)


def current_scope() -> RedactionScope:
    """The scope of the record being processed, else the engine's own."""
    scope = _CURRENT.get()
    return SECRETS.engine_scope if scope is None else scope


# Cached: log events reuse a few dozen field names, and the regex is most of the masking cost.
@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    return name not in _SAFE_NAMES and _SENSITIVE_NAME.search(name) is not None


# One per process: the engine's secrets are registered here, and the credential cache holds
# its tenants' secrets here.
SECRETS = SecretRegistry()
