"""send_email: no line separator, NUL or other control character ever reaches a mail header."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from pydantic import ValidationError

from actions import HttpClient
from actions.builtin.send_email import ACTION, SendEmailParams, SmtpSettings
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest
from tests.standins.smtp import SmtpStandIn
from tests.unit.support import FakeCredentials, action_settings, plain_client

USER, PASSWORD = "mailer@puraify.test", "smtp-secret-0002"
SCHEMA = Path(__file__).parents[4] / "schemas" / "json" / "params" / "send_email.schema.json"

# Each one ends a header line for some library, server or client, or is an injection vector.
FORBIDDEN = {
    "NUL": "\x00",
    "LF": "\n",
    "CR": "\r",
    "VT": "\x0b",
    "FF": "\x0c",
    "FS": "\x1c",
    "GS": "\x1d",
    "RS": "\x1e",
    "ESC": "\x1b",
    "DEL": "\x7f",
    "NEL": "\x85",
    "C1 CSI": "\x9b",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
}


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn({USER: PASSWORD}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


def runner(smtp: SmtpStandIn, http: HttpClient) -> ActionRunner:
    return ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials({("demo-project", "smtp"): f"{USER}:{PASSWORD}"}),
        http=http,
        egress_http=http,
        settings=action_settings(
            SmtpSettings(
                smtp_host="127.0.0.1",
                smtp_port=smtp.port,
                smtp_security="none",
                smtp_from="noreply@puraify.test",
                smtp_timeout_s=5,
            )
        ),
        retry=RetryPolicy(max_attempts=1),
    )


def mail(**params: Any) -> dict[str, Any]:
    return {"to": ["ada@example.test"], "subject": "Hi", "text": "Hello"} | params


@pytest.mark.parametrize("char", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_a_subject_with_a_line_break_or_control_is_refused(char: str) -> None:
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
        SendEmailParams.model_validate(mail(subject=f"Hi{char}Bcc: victim@evil.test"))


@pytest.mark.parametrize("char", FORBIDDEN.values(), ids=FORBIDDEN.keys())
@pytest.mark.parametrize("field", ["to", "cc", "bcc", "from", "reply_to"])
def test_an_address_with_a_line_break_or_control_is_refused(field: str, char: str) -> None:
    address = f"ada{char}@example.test"
    value: Any = [address] if field in {"to", "cc", "bcc"} else address
    with pytest.raises(ValidationError):
        SendEmailParams.model_validate(mail(**{field: value}))


@pytest.mark.parametrize("char", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_the_published_schema_refuses_them_too(char: str) -> None:
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(mail(subject=f"Hi{char}there"), schema)
    jsonschema.validate(mail(subject="Hi\tthere ✓ — café"), schema)


def test_tabs_and_non_ascii_text_are_still_a_subject() -> None:
    assert SendEmailParams.model_validate(mail(subject="Hi\tthere ✓ — café")).subject == (
        "Hi\tthere ✓ — café"
    )


@pytest.mark.parametrize("char", ["\x00", "\u2028", "\x85", "\x0b", "\x0c"])
async def test_through_the_runner_it_is_invalid_params_and_nothing_is_sent(
    smtp: SmtpStandIn, http: HttpClient, char: str
) -> None:
    smtp.received.clear()
    request = ExecutionRequest.model_validate(
        {
            "action": "send_email",
            "project": "demo-project",
            "params": mail(subject=f"Hi{char}Bcc: victim@evil.test"),
        }
    )
    envelope = await runner(smtp, http).execute(request, "r-1", structlog.get_logger())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS
    assert "subject" in envelope.error.message
    assert envelope.attempts == 0
    assert smtp.received == []


async def test_a_request_id_with_a_line_separator_still_sends_one_clean_header(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    smtp.received.clear()
    request = ExecutionRequest.model_validate(
        {"action": "send_email", "project": "demo-project", "params": mail()}
    )
    envelope = await runner(smtp, http).execute(
        request, "café\u2028Bcc: victim@evil.test", structlog.get_logger()
    )
    assert envelope.error is None, envelope.error
    (received,) = smtp.received
    assert received.rcpt_tos == ["ada@example.test"]
    assert received.message["X-Puraify-Request-Id"] == (
        "UTF-8''caf%C3%A9%E2%80%A8Bcc%3A%20victim%40evil.test"
    )
    assert received.message["Bcc"] is None
