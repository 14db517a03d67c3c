"""SMTP submission in phases, and each failure classified by the phase it happened in.

Connecting, STARTTLS and AUTH send no message: a failure there may be retried when transient.
Once the envelope and DATA are under way, a lost connection or a timeout may come after the
server accepted the message (its `250` lost on the way back): `outcome_unknown`, never sent
twice by us. The server's own replies follow RFC 5321 / 4954: 4yz transient (nothing was
accepted), 5yz permanent; 454 is a temporary authentication failure, 535 refused credentials.
"""

from __future__ import annotations

import enum
from email.message import EmailMessage

import aiosmtplib

from actions.errors import (
    ActionError,
    CredentialRejected,
    OutcomeUnknown,
    UpstreamError,
    UpstreamUnavailable,
)


class Phase(enum.Enum):
    CONNECT = "connect"  # TCP, TLS, greeting, EHLO, STARTTLS
    AUTH = "auth"
    SEND = "send"  # MAIL, RCPT, DATA


async def submit_message(
    message: EmailMessage,
    *,
    sender: str,
    recipients: list[str],
    hostname: str,
    port: int,
    security: str,
    username: str,
    password: str,
    timeout_s: float,
    service: str,
) -> dict[str, object]:
    """Submit one message; returns the refused recipients. Raises a classified ActionError."""
    client = aiosmtplib.SMTP(
        hostname=hostname,
        port=port,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        timeout=timeout_s,
    )
    phase = Phase.CONNECT
    try:
        await client.connect()
        try:
            phase = Phase.AUTH
            await client.login(username, password)
            phase = Phase.SEND
            refused, _reply = await client.send_message(
                message, sender=sender, recipients=recipients
            )
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
    except aiosmtplib.SMTPException as exc:
        raise classify(exc, phase, service) from None
    except OSError as exc:
        if phase is Phase.SEND:
            raise _maybe_accepted(type(exc).__name__) from None
        raise UpstreamUnavailable(
            f"cannot reach the SMTP server ({type(exc).__name__})", details={"sent": False}
        ) from None
    return {"refused": sorted(refused)}


def _maybe_accepted(what: str) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"the SMTP connection failed while the message was being submitted ({what}); the "
        "server may have accepted it, so it is not sent again"
    )


def classify(exc: aiosmtplib.SMTPException, phase: Phase, service: str) -> ActionError:
    """One SMTP failure -> one contract outcome (see the module docstring)."""
    text = str(exc)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if exc.code == 454 or 400 <= exc.code < 500:
            return UpstreamUnavailable(
                f"the SMTP server failed the login temporarily ({exc.code})",
                details={"smtp_code": exc.code},
            )
        return CredentialRejected(
            service, "the SMTP server refused the login", details={"smtp_code": exc.code}
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = sorted({r.code for r in exc.recipients})
        if all(400 <= c < 500 for c in codes):
            return UpstreamUnavailable(
                "the SMTP server deferred every recipient", details={"smtp_codes": codes}
            )
        return UpstreamError(
            "the SMTP server refused every recipient", details={"smtp_codes": codes}
        )
    if "SMTPUTF8" in text:
        return UpstreamError(
            "the SMTP server does not support SMTPUTF8, which this message's non-ASCII "
            "addresses need"
        )
    if "AUTH extension" in text:
        return UpstreamError(
            "the SMTP server offers no AUTH on this connection (check SMTP_SECURITY and the "
            "server's submission settings)"
        )
    if "STARTTLS extension" in text:
        # The server cannot do what SMTP_SECURITY requires: never fall back to cleartext.
        return UpstreamError("the SMTP server does not offer STARTTLS (SMTP_SECURITY=starttls)")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return UpstreamError(f"the SMTP server does not support what the message needs: {text}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected):
        if phase is Phase.SEND:
            return _maybe_accepted(type(exc).__name__)
        return UpstreamUnavailable(
            f"the SMTP server failed ({type(exc).__name__})", details={"sent": False}
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return UpstreamUnavailable("cannot connect to the SMTP server", details={"sent": False})
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        details = {"smtp_code": exc.code}
        message = f"the SMTP server answered {exc.code}"
        if 400 <= exc.code < 500:
            # A 4yz reply, even to DATA, means the server did not take the message.
            return UpstreamUnavailable(message, details=details)
        return UpstreamError(message, details=details)
    if phase is Phase.SEND:
        return _maybe_accepted(type(exc).__name__)
    return UpstreamUnavailable(f"SMTP failed ({type(exc).__name__})")
