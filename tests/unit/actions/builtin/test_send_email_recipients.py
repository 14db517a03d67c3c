"""send_email per recipient: a recipient the server defers while it accepts the others is sent
again alone (never a second copy to the others), whoever stays undelivered is named with the
server's code, more than 100 recipients go in several transactions (RFC 5321 4.5.3.1.8), and a
slow reply to DATA's final dot is awaited (RFC 5321 4.5.3.2.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from actions.builtin.send_email import ACTION, SendEmailParams, SmtpSettings
from actions.http import HttpClient
from tests.standins.smtp import SmtpStandIn
from tests.standins.smtp_script import ScriptedSmtpServer, SmtpScript
from tests.unit.support import FakeCredentials, action_settings, make_context, plain_client

USER, PASSWORD = "mailer@puraify.test", "smtp-secret-0002"


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn({USER: PASSWORD}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "actions.builtin.smtp_outcome.DEFERRED_RETRY_DELAYS_S", (0.05, 0.05), raising=False
    )


async def send(port: int, http: HttpClient, *, settings: Any = None, **params: Any) -> Any:
    values: dict[str, Any] = {"to": ["ada@example.test"], "subject": "Hi", "text": "Hello"}
    values.update(params)
    ctx = make_context(
        http=http,
        credentials=FakeCredentials({("demo-project", "smtp"): f"{USER}:{PASSWORD}"}),
        settings=settings
        or action_settings(
            SmtpSettings(
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_security="none",
                smtp_from="noreply@puraify.test",
                smtp_timeout_s=5,
            )
        ),
    )
    return dict(await ACTION.run(SendEmailParams.model_validate(values), ctx))


async def test_a_deferred_recipient_is_sent_again_alone(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    data = await send(smtp.port, http, to=["ada@example.test", "bob@greylist.test"])
    assert [mail.rcpt_tos for mail in smtp.received] == [
        ["ada@example.test"],
        ["bob@greylist.test"],
    ], "one copy each: ada is not sent the message again"
    assert data["undelivered"] == [] and data["refused"] == []


async def test_who_stays_undelivered_is_named_with_the_code(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    data = await send(
        smtp.port,
        http,
        to=["ada@example.test", "busy@deferred.test", "ghost@refused.test"],
    )
    # ada once; busy tried again alone twice; ghost (550) never again.
    assert [mail.rcpt_tos for mail in smtp.received] == [["ada@example.test"]]
    assert data["refused"] == ["busy@deferred.test", "ghost@refused.test"]
    assert [(u["recipient"], u["smtp_code"], u["retryable"]) for u in data["undelivered"]] == [
        ("busy@deferred.test", 450, True),
        ("ghost@refused.test", 550, False),
    ]


async def test_more_than_100_recipients_go_in_transactions_of_100(
    smtp: SmtpStandIn, http: HttpClient
) -> None:
    to = [f"to{i}@example.test" for i in range(50)]
    cc = [f"cc{i}@example.test" for i in range(50)]
    bcc = [f"bcc{i}@example.test" for i in range(20)]
    data = await send(smtp.port, http, to=to, cc=cc, bcc=bcc)
    assert [len(mail.rcpt_tos) for mail in smtp.received] == [100, 20]
    assert sorted(r for mail in smtp.received for r in mail.rcpt_tos) == sorted(to + cc + bcc)
    assert data["undelivered"] == []


async def test_a_slow_reply_to_the_final_dot_is_awaited(http: HttpClient) -> None:
    with ScriptedSmtpServer(SmtpScript(data_reply_delay_s=1.5)) as server:
        settings = action_settings(
            SmtpSettings(
                smtp_host="127.0.0.1",
                smtp_port=server.port,
                smtp_security="none",
                smtp_from="noreply@puraify.test",
                smtp_timeout_s=0.5,  # connection and commands
                smtp_data_timeout_s=10.0,  # RFC 5321: 10 minutes by default
            )
        )
        data = await send(server.port, http, settings=settings)
    assert server.messages == 1 and data["undelivered"] == []
