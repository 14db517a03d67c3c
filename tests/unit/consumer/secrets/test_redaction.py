"""consumer/secrets/redaction.py: scoped scrubbing by value, masking by name, credentials."""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from consumer.secrets.redaction import (
    MASK,
    SECRETS,
    RedactionScope,
    SecretRegistry,
    credential_problem,
    current_scope,
    is_sensitive_name,
)


def scoped(*secrets: str, engine: tuple[str, ...] = ()) -> RedactionScope:
    """A fresh registry's scope holding `secrets` (the credentials one record used)."""
    registry = SecretRegistry()
    for value in engine:
        registry.add_engine_secret(value)
    scope = registry.scope()
    for value in secrets:
        scope.hold(value)
    return scope


def test_nothing_in_scope_leaves_text_alone() -> None:
    scope = SecretRegistry().scope()
    assert not scope
    assert scope.scrub_text("xoxb-123456") == "xoxb-123456"
    value = {"a": ["xoxb-123456"]}
    assert scope.scrub_value(value) is value  # the fast path does not even walk it


def test_a_secret_in_scope_is_scrubbed_everywhere_in_text() -> None:
    scope = scoped("xoxb-123456")
    assert scope.scrub_text("a xoxb-123456 b xoxb-123456") == f"a {MASK} b {MASK}"


def test_a_five_character_token_is_scrubbed() -> None:
    scope = scoped("k3Y9z")
    assert scope.scrub_text("token=k3Y9z;") == f"token={MASK};"


@pytest.mark.parametrize(
    "secret",
    ['pa"ss-word-1', "back\\slash-42", 'both"\\mixed', "tab\there-99", "ünïcödé-sécret"],
)
def test_json_escaped_spellings_are_scrubbed(secret: str) -> None:
    scope = scoped(secret)
    for text in (
        json.dumps({"x": secret}),
        json.dumps({"x": secret}, ensure_ascii=False),
        json.dumps({"x": f"Bearer {secret}"}),
    ):
        scrubbed = scope.scrub_text(text)
        assert secret not in scrubbed
        assert json.dumps(secret)[1:-1] not in scrubbed
        assert json.dumps(secret, ensure_ascii=False)[1:-1] not in scrubbed
        assert MASK in scrubbed


def test_the_longest_secret_is_masked_whole() -> None:
    scope = scoped("secret-1", "secret-1-and-more")
    assert scope.scrub_text("secret-1-and-more") == MASK


def test_overlapping_occurrences_are_masked_as_one() -> None:
    scope = scoped("abcdef-1", "ef-1-xyz")
    assert scope.scrub_text("<abcdef-1-xyz>") == f"<{MASK}>"


def test_regex_metacharacters_in_a_secret() -> None:
    scope = scoped("a.b*c+d?(e)")
    assert scope.scrub_text("x a.b*c+d?(e) y aXbbcd") == f"x {MASK} y aXbbcd"


def test_a_lone_surrogate_in_the_text_does_not_stop_the_scrub() -> None:
    scope = scoped("tok-surrogate-1")
    assert scope.scrub_text("\ud800 tok-surrogate-1") == f"\ud800 {MASK}"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "Password",
        "db_passwd",
        "authorization",
        "Authorization",
        "proxy-authorization",
        "api_key",
        "apiKey",
        "x-api-key",
        "token",
        "access_token",
        "client_secret",
        "cookie",
        "credentials",
    ],
)
def test_sensitive_names(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize(
    "name", ["credential_service", "token_service", "message", "channel", "request_id", "level"]
)
def test_ordinary_names(name: str) -> None:
    assert not is_sensitive_name(name)


def test_scrub_value_masks_by_name_and_by_value() -> None:
    scope = scoped("registered-secret")
    value = {
        "password": "hunter2",
        "headers": {"Authorization": "Bearer x", "X-Ok": "fine registered-secret"},
        "items": ["registered-secret", 1, None, ("registered-secret",)],
        "token": None,
        "credential_service": "slack",
        "count": 3,
    }
    assert scope.scrub_value(value, by_name=True) == {
        "password": MASK,
        "headers": {"Authorization": MASK, "X-Ok": f"fine {MASK}"},
        "items": [MASK, 1, None, [MASK]],
        "token": None,
        "credential_service": "slack",
        "count": 3,
    }


def test_scrub_value_without_by_name_keeps_named_fields() -> None:
    scope = scoped("registered-secret")
    value = {"token": "third-party data", "x": "registered-secret"}
    assert scope.scrub_value(value) == {"token": "third-party data", "x": MASK}


def test_a_secret_as_a_nested_key_is_masked_and_no_entry_is_lost() -> None:
    scope = scoped("key-secret-1")
    value = {"echo": {"key-secret-1": 1, f"{MASK}": 2, "x key-secret-1": 3}}
    assert scope.scrub_value(value) == {"echo": {MASK + "#2": 1, MASK: 2, f"x {MASK}": 3}}


@pytest.mark.parametrize("credential", ["request_id", '","status":"', "success", "info"])
def test_a_credential_named_like_the_structure_changes_no_field_of_a_log_event(
    credential: str,
) -> None:
    scope = scoped(credential)
    event = {
        "event": "action.succeeded",
        "level": "info",
        "request_id": "request_id",
        "project": "success",
        "message": f"said {credential}",
        "fields": {"status": "success"},
    }
    scrubbed = scope.scrub_event(event)
    assert list(scrubbed) == list(event)
    assert {k: scrubbed[k] for k in ("event", "level", "request_id", "project")} == {
        "event": "action.succeeded",
        "level": "info",
        "request_id": "request_id",
        "project": "success",
    }
    assert scrubbed["message"] == f"said {MASK}"
    assert json.loads(json.dumps(scrubbed))["fields"].keys() == {"status"}


def test_scopes_are_per_record_and_the_engine_secrets_are_in_every_one() -> None:
    registry = SecretRegistry()
    registry.add_engine_secret("engine-vault-token-1")
    a = registry.scope()
    a.hold("project-a-token-1")
    b = registry.scope()
    text = "project-a-token-1 engine-vault-token-1"
    assert a.scrub_text(text) == f"{MASK} {MASK}"
    assert b.scrub_text(text) == f"project-a-token-1 {MASK}"
    assert registry.engine_scope.scrub_text(text) == f"project-a-token-1 {MASK}"


def test_a_short_engine_secret_is_not_a_pattern() -> None:
    registry = SecretRegistry()
    registry.add_engine_secret("pw1")
    assert not registry.scope()


def test_the_current_scope_is_the_active_one_else_the_engine_scope() -> None:
    scope = SECRETS.scope()
    assert current_scope() is SECRETS.engine_scope
    with scope.active():
        assert current_scope() is scope
    assert current_scope() is SECRETS.engine_scope


TOKEN = "SECRETtoken-normal-123456789"


@pytest.mark.parametrize("kept", range(4, len(TOKEN)))
def test_a_cut_in_the_middle_of_a_token_leaves_at_most_three_characters(kept: int) -> None:
    scope = scoped(TOKEN)
    cut = ("x" * 965 + "Bearer " + TOKEN)[: 965 + 7 + kept]
    scrubbed = scope.scrub_text(cut)
    assert scrubbed == "x" * 965 + "Bearer " + MASK
    assert TOKEN[:4] not in scrubbed


def test_a_cut_leaving_three_characters_or_a_common_prefix_is_kept() -> None:
    scope = scoped(TOKEN)
    assert scope.scrub_text("Bearer SEC") == "Bearer SEC"
    assert scope.scrub_text("SECRETS are fine") == "SECRETS are fine"


def test_a_cut_in_an_escaped_spelling_is_masked_too() -> None:
    secret = "tok/with<odd>&'chars-123456"
    scope = scoped(secret)
    for spelled in (html.escape(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]):
        cut = "pad " + spelled[: len(spelled) - 3]
        assert scope.scrub_text(cut) == f"pad {MASK}"


def test_a_tail_flooded_with_a_token_head_is_masked_from_the_first() -> None:
    scope = scoped(TOKEN)
    flood = "pad " + "SECR" * 200 + "SECRETtok"
    assert scope.scrub_text(flood).startswith("pad ")
    assert "SECRETtok" not in scope.scrub_text(flood)


SPELLED = 'tok-S3cr3t/"q"\\+x=y é<&>-0123456789'


@pytest.mark.parametrize(
    "written",
    [
        pytest.param(lambda s: s, id="raw"),
        pytest.param(lambda s: json.dumps({"k": s}), id="json-ascii"),
        pytest.param(lambda s: json.dumps({"k": s}, ensure_ascii=False), id="json"),
        pytest.param(lambda s: json.dumps({"k": s}).replace("/", "\\/"), id="json-slash"),
        pytest.param(lambda s: f"<p>{html.escape(s)}</p>", id="html"),
        pytest.param(lambda s: f"<p>{html.escape(s, quote=False)}</p>", id="html-text"),
        pytest.param(lambda s: f"ValueError({s!r})", id="repr"),
        pytest.param(lambda s: f"Illegal header value {('Bearer ' + s).encode()!r}", id="bytes"),
        pytest.param(lambda s: f"https://h/p?token={quote(s, safe='')}&x=1", id="query"),
        pytest.param(
            lambda s: "https://h/?t=" + re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), quote(s)),
            id="query-lowercase-hex",
        ),
        pytest.param(lambda s: f"https://h/{quote(s)}/x", id="path"),
        pytest.param(lambda s: f"a={quote_plus(s)}", id="form"),
        *[
            pytest.param(
                lambda s, p=prefix: "Basic " + base64.b64encode(p + s.encode() + b":x").decode(),
                id=f"basic-{len(prefix)}",
            )
            for prefix in (b"", b"u:", b"us:", b"use:")
        ],
        pytest.param(lambda s: base64.urlsafe_b64encode(s.encode()).decode(), id="urlsafe-b64"),
    ],
)
def test_every_spelling_of_a_secret_is_scrubbed(written: Callable[[str], str]) -> None:
    scope = scoped(SPELLED)
    text = written(SPELLED)
    scrubbed = scope.scrub_text(text)
    assert scrubbed != text and MASK in scrubbed
    assert "S3cr3t" not in scrubbed and "0123456789" not in scrubbed


@pytest.mark.parametrize(
    ("value", "refused"),
    [("", True), ("abcd", True), ("abcde", False), ("x" * 16_384, False), ("x" * 16_385, True)],
)
def test_the_credential_rule(value: str, refused: bool) -> None:
    assert (credential_problem(value) is not None) is refused


def test_a_secret_in_use_is_never_dropped_early_and_leaves_when_released() -> None:
    registry = SecretRegistry()
    held_by_cache = registry.hold("rotated-token-1")
    scope = registry.scope()
    scope.add(held_by_cache)
    registry.release(held_by_cache)  # the cache evicted it; the record still renders
    assert registry.holds("rotated-token-1")
    assert scope.scrub_text("rotated-token-1") == MASK
    scope.close()
    assert not registry.holds("rotated-token-1")
    assert len(registry) == 0


def test_cost_of_adding_and_scrubbing_does_not_grow_with_the_secrets_held() -> None:
    """Operation counts, not timings: one automaton per added secret, whatever is held, and a
    scrub searches the engine's automaton plus one per credential of the record."""
    registry = SecretRegistry()
    registry.add_engine_secret("engine-secret-" + uuid.uuid4().hex)
    for n in range(1_000):
        registry.hold(f"tenant-{n}-{uuid.uuid4().hex}")
    before = registry.built
    scope = registry.scope()
    scope.hold("the-record-token-1")
    assert registry.built == before + 1
    searches: list[int] = []
    for automaton in (registry.engine_automaton, *(s.automaton for s in scope.secrets)):
        searches.append(len(automaton.spans("x the-record-token-1")))
    assert len(searches) == 2  # engine + the record's one credential, not 1,001
    assert scope.scrub_text("x the-record-token-1") == f"x {MASK}"
