"""send_email's failures classified by the SMTP phase they happen in (RFC 5321 / 4954), against
a scripted loopback SMTP server: nothing sent twice, permanent refusals not retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from actions.builtin.send_email import ACTION, SmtpSettings
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.standins.smtp_script import ScriptedSmtpServer, SmtpScript
from tests.unit.support import FakeCredentials, action_settings, plain_client


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


async def send(server: ScriptedSmtpServer, http: HttpClient, **params: Any) -> ResultEnvelope:
    async def no_wait(seconds: float) -> None:
        pass

    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials({("demo", "smtp"): "mailer:secret"}),
        http=http,
        egress_http=http,
        settings=action_settings(
            SmtpSettings(
                smtp_host="127.0.0.1",
                smtp_port=server.port,
                smtp_security="none",
                smtp_from="noreply@puraify.test",
                smtp_timeout_s=2.0,
            )
        ),
        sleep=no_wait,
        retry=RetryPolicy(max_attempts=3),
    )
    values = {"to": ["ada@example.test"], "subject": "Hi", "text": "Hello", **params}
    request = ExecutionRequest.model_validate(
        {"action": "send_email", "project": "demo", "params": values}
    )
    return await runner.execute(request, "req-1", structlog.get_logger())


async def test_a_server_without_auth_is_a_permanent_upstream_error(http: HttpClient) -> None:
    with ScriptedSmtpServer(SmtpScript(extensions=["8BITMIME"])) as server:
        envelope = await send(server, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert "offers no AUTH" in envelope.error.message
    assert envelope.attempts == 1 and server.messages == 0


async def test_a_server_without_smtputf8_is_named_as_such(http: HttpClient) -> None:
    with ScriptedSmtpServer(SmtpScript()) as server:
        envelope = await send(server, http, to=["jürgen@example.test"])
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert "SMTPUTF8" in envelope.error.message and "STARTTLS" not in envelope.error.message
    assert envelope.attempts == 1 and server.messages == 0


async def test_454_temporary_authentication_failure_is_retried(http: HttpClient) -> None:
    script = SmtpScript(auth_reply="454 4.7.0 Temporary authentication failure")
    with ScriptedSmtpServer(script) as server:
        envelope = await send(server, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.error.retryable and envelope.attempts == 3
    assert envelope.error.details == {"smtp_code": 454}


async def test_535_is_a_refused_login(http: HttpClient) -> None:
    script = SmtpScript(auth_reply="535 5.7.8 Authentication credentials invalid")
    with ScriptedSmtpServer(script) as server:
        envelope = await send(server, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.attempts == 2, "fetched once more, as a rotated credential may fix it"


async def test_a_4yz_reply_to_data_is_retried_since_the_server_took_nothing(
    http: HttpClient,
) -> None:
    with ScriptedSmtpServer(SmtpScript(data_reply="451 4.3.0 try again later")) as server:
        envelope = await send(server, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.attempts == 3 and server.messages == 3


async def test_a_connection_cut_after_the_message_is_outcome_unknown(http: HttpClient) -> None:
    with ScriptedSmtpServer(SmtpScript(data_reply=None)) as server:
        envelope = await send(server, http)
    assert envelope.error is not None and envelope.error.code is ErrorCode.OUTCOME_UNKNOWN
    assert envelope.error.details == {"sent": True} and not envelope.error.retryable
    assert envelope.attempts == 1 and server.messages == 1, "never sent twice"


async def test_a_message_accepted(http: HttpClient) -> None:
    with ScriptedSmtpServer(SmtpScript()) as server:
        envelope = await send(server, http)
    assert envelope.status == "success", envelope.error
    assert server.messages == 1 and server.commands[-1] == "QUIT"
