"""consumer/redaction.py: scrubbing by value and masking by name."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from consumer.ops.redaction import MASK, REDACTOR, SecretRedactor, is_sensitive_name


def fresh(*secrets: str) -> SecretRedactor:
    redactor = SecretRedactor()
    for secret in secrets:
        redactor.add(secret)
    return redactor


def test_nothing_registered_leaves_text_alone() -> None:
    assert SecretRedactor().scrub("xoxb-123456") == "xoxb-123456"


def test_registered_secret_is_scrubbed_everywhere_in_text() -> None:
    redactor = fresh("xoxb-123456")
    assert redactor.scrub("a xoxb-123456 b xoxb-123456") == f"a {MASK} b {MASK}"


def test_short_values_are_not_registered() -> None:
    redactor = fresh("abc", "12345")
    assert redactor.scrub("abc 12345") == "abc 12345"
    redactor.add("123456")
    assert redactor.scrub("123456") == MASK


@pytest.mark.parametrize(
    "secret",
    ['pa"ss-word-1', "back\\slash-42", 'both"\\mixed', "tab\there-99", "ünïcödé-sécret"],
)
def test_json_escaped_spellings_are_scrubbed(secret: str) -> None:
    redactor = fresh(secret)
    for text in (
        json.dumps({"x": secret}),
        json.dumps({"x": secret}, ensure_ascii=False),
        json.dumps({"x": f"Bearer {secret}"}),
    ):
        scrubbed = redactor.scrub(text)
        assert secret not in scrubbed
        assert json.dumps(secret)[1:-1] not in scrubbed
        assert json.dumps(secret, ensure_ascii=False)[1:-1] not in scrubbed
        assert MASK in scrubbed


def test_longest_secret_is_masked_whole() -> None:
    redactor = fresh("secret-1", "secret-1-and-more")
    assert redactor.scrub("secret-1-and-more") == MASK


def test_regex_metacharacters_in_a_secret() -> None:
    redactor = fresh("a.b*c+d?(e)")
    assert redactor.scrub("x a.b*c+d?(e) y aXbbcd") == f"x {MASK} y aXbbcd"


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
    redactor = fresh("registered-secret")
    value = {
        "password": "hunter2",
        "headers": {"Authorization": "Bearer x", "X-Ok": "fine registered-secret"},
        "items": ["registered-secret", 1, None, ("registered-secret",)],
        "token": None,
        "credential_service": "slack",
        "count": 3,
    }
    assert redactor.scrub_value(value) == {
        "password": MASK,
        "headers": {"Authorization": MASK, "X-Ok": f"fine {MASK}"},
        "items": [MASK, 1, None, [MASK]],
        "token": None,
        "credential_service": "slack",
        "count": 3,
    }


def test_scrub_value_without_by_name_keeps_named_fields() -> None:
    redactor = fresh("registered-secret")
    value = {"token": "third-party data", "x": "registered-secret"}
    assert redactor.scrub_value(value, by_name=False) == {"token": "third-party data", "x": MASK}


def test_global_redactor() -> None:
    secret = "global-" + uuid.uuid4().hex
    assert REDACTOR.scrub(secret) == secret
    REDACTOR.add(secret)
    assert REDACTOR.scrub(f"<{secret}>") == f"<{MASK}>"


SPELLED = 'tok-S3cr3t/"q"\\+x=y é-0123456789'


@pytest.mark.parametrize(
    "written",
    [
        pytest.param(lambda s: s, id="raw"),
        pytest.param(lambda s: json.dumps({"k": s}), id="json-ascii"),
        pytest.param(lambda s: json.dumps({"k": s}, ensure_ascii=False), id="json"),
        pytest.param(lambda s: f"ValueError({s!r})", id="repr"),
        pytest.param(lambda s: f"Illegal header value {('Bearer ' + s).encode()!r}", id="bytes"),
        pytest.param(lambda s: f"https://h/p?token={quote(s, safe='')}&x=1", id="query"),
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
    redactor = fresh(SPELLED)
    text = written(SPELLED)
    scrubbed = redactor.scrub(text)
    assert scrubbed != text and MASK in scrubbed
    assert "S3cr3t" not in scrubbed and "0123456789" not in scrubbed
