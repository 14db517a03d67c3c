"""`send_email`: one message through the operator's SMTP server (aiosmtplib).

The server (`SMTP_HOST`, `SMTP_PORT`, `SMTP_SECURITY`) is a setting, not a param: a request
cannot point the engine at an SMTP server of its choosing. The project's `smtp` credential is
`username:password` for SMTP AUTH. Up to 150 recipients (`to`, `cc`, `bcc`), sent in
transactions of at most 100 (`actions.smtp_outcome`); a deferred recipient is sent again alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from actions.base import Action, ActionContext, ActionParams
from actions.builtin.request_id_header import request_id_header_value
from actions.builtin.smtp_outcome import DEFERRED_RETRY_DELAYS_S, submit_message
from actions.errors import InvalidParams, MissingCredentials
from actions.settings import ActionSettings, setting

SERVICE = "smtp"
# Deliberately plain: an address with no whitespace, no control character and one "@".
_ADDRESS = re.compile(r"^[^\s\x00-\x1F\x7F-\x9F@<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}$")
# What may never be in a header field: every control character but HT (C0, DEL, C1 with NEL)
# and the Unicode line and paragraph separators. Any of them can end a header line for some
# mail library, server or client (header injection: `Subject: Hi<NUL>Bcc: victim@...`), and
# Python's email package refuses most of them only when the message is built, too late to be
# the request's fault. The same pattern is in the JSON Schema, for validators upstream.
_HEADER_FORBIDDEN = re.compile(r"[\x00-\x08\x0A-\x1F\x7F-\x9F\u2028\u2029]")
_HEADER_TEXT_PATTERN = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F\u2028\u2029]*$"


def _header_safe(value: str) -> str:
    found = _HEADER_FORBIDDEN.search(value)
    if found is not None:
        raise ValueError(
            f"must not contain U+{ord(found.group()):04X} (a line break or control character)"
        )
    return value


Address = Annotated[str, Field(max_length=320, pattern=_ADDRESS.pattern)]
HeaderText = Annotated[
    str,
    Field(max_length=998, json_schema_extra={"pattern": _HEADER_TEXT_PATTERN}),
    AfterValidator(_header_safe),
]


class SendEmailParams(ActionParams):
    to: list[Address] = Field(min_length=1, max_length=50)
    cc: list[Address] = Field(default_factory=list, max_length=50)
    bcc: list[Address] = Field(default_factory=list, max_length=50)
    subject: HeaderText
    text: str | None = Field(default=None, max_length=1_000_000, description="Plain-text body.")
    html: str | None = Field(default=None, max_length=1_000_000, description="HTML body.")
    from_address: Address | None = Field(
        default=None, alias="from", description="Sender; default `SMTP_FROM`."
    )
    reply_to: Address | None = None

    @model_validator(mode="after")
    def _a_body(self) -> SendEmailParams:
        if self.text is None and self.html is None:
            raise ValueError("give `text`, `html` or both")
        return self


class SmtpSettings(ActionSettings):
    smtp_host: str = setting("SMTP_HOST", "localhost", "SMTP server `send_email` submits to.")
    smtp_port: int = setting("SMTP_PORT", 587, "SMTP server port.", ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = setting(
        "SMTP_SECURITY",
        "starttls",
        "`starttls` (required upgrade), `tls` (implicit TLS, usually port 465) or `none`.",
    )
    smtp_from: str | None = setting(
        "SMTP_FROM", None, "Default sender of `send_email` when the request names none."
    )
    smtp_timeout_s: float = setting(
        "SMTP_TIMEOUT_S", 30.0, "SMTP connection and reply timeout.", gt=0
    )
    smtp_data_timeout_s: float = setting(
        "SMTP_DATA_TIMEOUT_S",
        # RFC 5321 4.5.3.2.6: wait 10 minutes for the reply to DATA's final dot ("an early
        # timeout would typically result in delivery of multiple copies").
        600.0,
        "How long a mail's transaction may take, the reply to DATA's final dot included.",
        gt=0,
    )


class SendEmail(Action[SendEmailParams]):
    name = "send_email"
    settings_model = SmtpSettings
    params_model = SendEmailParams
    service = SERVICE
    description = "Sends an email through the configured SMTP server."

    def upstream(self, params: SendEmailParams, ctx: ActionContext) -> str | None:
        settings = ctx.settings.get(SmtpSettings)
        return f"smtp://{settings.smtp_host}:{settings.smtp_port}"

    def attempt_timeout_s(self, params: SendEmailParams, ctx: ActionContext) -> float:
        # The reply to DATA's dot may take 10 minutes (RFC 5321 4.5.3.2.6), and a deferred
        # recipient is sent again within the attempt.
        settings = ctx.settings.get(SmtpSettings)
        return settings.smtp_data_timeout_s + sum(DEFERRED_RETRY_DELAYS_S)

    async def run(self, params: SendEmailParams, ctx: ActionContext) -> Mapping[str, Any]:
        sender = params.from_address or ctx.settings.get(SmtpSettings).smtp_from
        if sender is None:
            raise InvalidParams("params.from: required when SMTP_FROM is not set")
        username, separator, password = (await ctx.token(SERVICE)).get_secret_value().partition(":")
        if not separator or not username:
            raise MissingCredentials(
                "the smtp credential must be 'username:password'", details={"service": SERVICE}
            )
        message = _message(params, sender, ctx.request_id)
        config = ctx.settings.get(SmtpSettings)
        submission = await submit_message(
            message,
            sender=sender,
            recipients=[*params.to, *params.cc, *params.bcc],
            hostname=config.smtp_host,
            port=config.smtp_port,
            security=config.smtp_security,
            username=username,
            password=password,
            timeout_s=config.smtp_timeout_s,
            data_timeout_s=ctx.call_timeout_s(config.smtp_data_timeout_s),
            service=SERVICE,
        )
        return {"message_id": message["Message-ID"], **submission.data()}


def _message(params: SendEmailParams, sender: str, request_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(params.to)
    if params.cc:
        message["Cc"] = ", ".join(params.cc)
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Subject"] = params.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    # Lets the recipient side (and our logs) tie a message to its request.
    # ASCII as in the HTTP actions' Idempotency-Key: a request id may hold U+2028.
    message["X-Puraify-Request-Id"] = request_id_header_value(request_id)
    if params.text is not None:
        message.set_content(params.text)
    if params.html is not None:
        if params.text is None:
            message.set_content(params.html, subtype="html")
        else:
            message.add_alternative(params.html, subtype="html")
    return message


ACTION = SendEmail()
