"""send_email through aiosmtplib to a local aiosmtpd server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from actions import InvalidParams, MissingCredentials, UpstreamError, UpstreamUnavailable
from actions.builtin.send_email import ACTION, SendEmailParams, SmtpSettings
from actions.errors import CredentialRejected
from actions.http import HttpClient
from tests.standins.smtp import SmtpStandIn
from tests.unit.support import (
    FakeCredentials,
    action_settings,
    closed_port,
    make_context,
    plain_client,
)

USER, PASSWORD = "mailer@puraify.test", "smtp-secret-0001"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpStandIn]:
    with SmtpStandIn({USER: PASSWORD}) as server:
        yield server


@pytest.fixture
def smtp(smtp_server: SmtpStandIn) -> SmtpStandIn:
    smtp_server.received.clear()
    return smtp_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


async def send(
    port: int,
    http: HttpClient,
    credential: str = f"{USER}:{PASSWORD}",
    smtp_from: str | None = "noreply@puraify.test",
    **params: Any,
) -> dict[str, Any]:
    values: dict[str, Any] = {"to": ["ada@example.test"], "subject": "Hi", "text": "Hello"}
    values.update(params)
    ctx = make_context(
        http=http,
        credentials=FakeCredentials({("demo-project", "smtp"): credential}),
        settings=action_settings(
            SmtpSettings(
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_security="none",
                smtp_from=smtp_from,
                smtp_timeout_s=5,
            )
        ),
    )
    return dict(await ACTION.run(SendEmailParams.model_validate(values), ctx))


async def test_a_message_arrives(smtp: SmtpStandIn, http: HttpClient) -> None:
    data = await send(
        smtp.port,
        http,
        to=["ada@example.test", "bob@example.test"],
        cc=["carol@example.test"],
        bcc=["audit@example.test"],
        subject="Welcome ✓",
        text="Plain body",
        html="<p>HTML body</p>",
        reply_to="support@puraify.test",
    )
    (mail,) = smtp.received
    assert mail.login == USER
    assert mail.mail_from == "noreply@puraify.test"
    assert mail.rcpt_tos == [
        "ada@example.test",
        "bob@example.test",
        "carol@example.test",
        "audit@example.test",
    ]
    message = mail.message
    assert message["To"] == "ada@example.test, bob@example.test"
    assert message["Cc"] == "carol@example.test"
    assert message["Bcc"] is None, "bcc recipients are not disclosed"
    assert message["Reply-To"] == "support@puraify.test"
    assert message["X-Puraify-Request-Id"] == "req-1"
    assert message["Message-ID"] == data["message_id"]
    assert message.is_multipart()
    parts = {p.get_content_type(): p.get_payload(decode=True) for p in message.walk()}
    assert parts["text/plain"].strip() == b"Plain body"  # type: ignore[union-attr]
    assert parts["text/html"].strip() == b"<p>HTML body</p>"  # type: ignore[union-attr]
    assert data["refused"] == []


async def test_sender_from_params_wins(smtp: SmtpStandIn, http: HttpClient) -> None:
    await send(smtp.port, http, smtp_from=None, **{"from": "team@puraify.test"})
    assert smtp.received[0].mail_from == "team@puraify.test"


async def test_no_sender_anywhere_is_invalid_params(smtp: SmtpStandIn, http: HttpClient) -> None:
    with pytest.raises(InvalidParams, match=r"params\.from"):
        await send(smtp.port, http, smtp_from=None)


async def test_a_refused_login_is_credential_rejected(smtp: SmtpStandIn, http: HttpClient) -> None:
    with pytest.raises(CredentialRejected) as info:
        await send(smtp.port, http, credential=f"{USER}:wrong")
    assert info.value.service == "smtp"
    assert smtp.received == []


async def test_a_credential_without_a_user_is_missing(smtp: SmtpStandIn, http: HttpClient) -> None:
    with pytest.raises(MissingCredentials, match="username:password"):
        await send(smtp.port, http, credential="just-a-password")


async def test_some_recipients_refused_is_still_sent(smtp: SmtpStandIn, http: HttpClient) -> None:
    data = await send(smtp.port, http, to=["ada@example.test", "ghost@refused.test"])
    assert data["refused"] == ["ghost@refused.test"]
    assert smtp.received[0].rcpt_tos == ["ada@example.test"]


async def test_every_recipient_refused_is_an_upstream_error(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await send(smtp.port, http, to=["ghost@refused.test"])
    assert info.value.details == {"smtp_codes": [550]}


async def test_every_recipient_deferred_is_retryable(smtp: SmtpStandIn, http: HttpClient) -> None:
    with pytest.raises(UpstreamUnavailable):
        await send(smtp.port, http, to=["busy@deferred.test"])


async def test_no_server_is_retryable(http: HttpClient) -> None:
    with pytest.raises(UpstreamUnavailable):
        await send(closed_port(), http)


@pytest.mark.parametrize(
    "params",
    [
        {"to": [], "subject": "s", "text": "t"},
        {"to": ["a@b.test"], "subject": "s"},
        {"to": ["a@b.test"], "subject": "s\r\nBcc: evil@x.test", "text": "t"},
        {"to": ["a@b.test\r\nBcc: evil@x.test"], "subject": "s", "text": "t"},
        {"to": ["not-an-address"], "subject": "s", "text": "t"},
    ],
)
def test_params_refuse_header_injection_and_empty_mail(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SendEmailParams.model_validate(params)


async def test_starttls_required_never_falls_back_to_cleartext(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    ctx = make_context(
        http=http,
        credentials=FakeCredentials({("demo-project", "smtp"): f"{USER}:{PASSWORD}"}),
        settings=action_settings(
            SmtpSettings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="n@puraify.test")
        ),  # smtp_security defaults to starttls; this server offers no STARTTLS
    )
    params = SendEmailParams.model_validate({"to": ["a@b.test"], "subject": "s", "text": "t"})
    with pytest.raises(UpstreamError, match="STARTTLS"):
        await ACTION.run(params, ctx)
    assert smtp.received == []
