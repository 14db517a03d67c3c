"""SMTP submission in phases, and each failure classified by the phase it happened in.

Connecting, STARTTLS and AUTH send no message: a failure there may be retried when transient.
Once the envelope and DATA are under way, a lost connection or a timeout may come after the
server accepted the message (its `250` lost on the way back): `outcome_unknown`, never sent
twice by us. The server's own replies follow RFC 5321 / 4954: 4yz transient (nothing was
accepted), 5yz permanent; 454 is a temporary authentication failure, 535 refused credentials.

Per recipient: a message accepted for some recipients and deferred (4yz to RCPT) for others is
sent again to the deferred ones alone, on the same connection, after a short wait
(`DEFERRED_RETRY_DELAYS_S`); whoever is still not delivered is listed in the envelope's
`undelivered` with the server's code and `retryable`. Once anyone has the message, no failure
retries the request (that would be a second copy): a lost connection is `outcome_unknown`
naming who was delivered. More than `MAX_RECIPIENTS` go in several transactions.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

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


# RFC 5321 4.5.3.1.8: a server must accept 100 recipients in one transaction, and may refuse
# more (452). More recipients go in further transactions of the same message.
MAX_RECIPIENTS = 100
# A recipient deferred (4yz) while others were accepted is sent again alone, after these waits,
# on the same connection (never a second copy to those accepted).
DEFERRED_RETRY_DELAYS_S = (1.0, 3.0)


@dataclass
class Submission:
    """What the server did with each recipient: accepted (`delivered`), or not, with its
    reply (`undelivered`: recipient -> (code, text))."""

    delivered: list[str] = field(default_factory=list)
    undelivered: dict[str, tuple[int, str]] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        """The envelope's part: `refused` (every address not delivered, as before) and
        `undelivered`, each with its reply code and whether a later attempt may succeed."""
        return {
            "refused": sorted(self.undelivered),
            "undelivered": [
                {
                    "recipient": recipient,
                    "smtp_code": code,
                    "smtp_message": text[:200],
                    "retryable": 400 <= code < 500,
                }
                for recipient, (code, text) in sorted(self.undelivered.items())
            ],
        }


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
    data_timeout_s: float,
    service: str,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> Submission:
    """Submit one message, in transactions of at most `MAX_RECIPIENTS`, deferred recipients
    sent again alone; raises a classified ActionError when nothing was delivered, or when the
    outcome is unknown. `data_timeout_s` bounds each transaction (the reply to DATA's dot)."""
    client = aiosmtplib.SMTP(
        hostname=hostname,
        port=port,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        timeout=timeout_s,
    )
    phase = Phase.CONNECT
    submission = Submission()
    try:
        await client.connect()
        try:
            phase = Phase.AUTH
            await client.login(username, password)
            phase = Phase.SEND
            await _submit(
                client,
                message,
                sender=sender,
                recipients=recipients,
                data_timeout_s=data_timeout_s,
                submission=submission,
                sleep=sleep,
            )
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
    except aiosmtplib.SMTPException as exc:
        raise classify(exc, phase, service, submission) from None
    except OSError as exc:
        if phase is Phase.SEND:
            raise _maybe_accepted(type(exc).__name__, submission) from None
        raise UpstreamUnavailable(
            f"cannot reach the SMTP server ({type(exc).__name__})", details={"sent": False}
        ) from None
    return submission


async def _submit(
    client: aiosmtplib.SMTP,
    message: EmailMessage,
    *,
    sender: str,
    recipients: list[str],
    data_timeout_s: float,
    submission: Submission,
    sleep: Callable[[float], Awaitable[object]],
) -> None:
    pending = recipients
    for delay in (0.0, *DEFERRED_RETRY_DELAYS_S):
        if delay:
            await sleep(delay)
        deferred: list[str] = []
        for start in range(0, len(pending), MAX_RECIPIENTS):
            batch = pending[start : start + MAX_RECIPIENTS]
            try:
                refused, _reply = await client.send_message(
                    message, sender=sender, recipients=batch, timeout=data_timeout_s
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                if not submission.delivered:
                    raise  # nothing went anywhere: the whole request may be retried
                refused = {
                    r.recipient: aiosmtplib.SMTPResponse(r.code, r.message) for r in exc.recipients
                }
            except aiosmtplib.SMTPResponseException as exc:
                if not submission.delivered or not 400 <= exc.code < 600:
                    raise
                # The server refused this transaction's DATA (it took nothing of it) after
                # others were delivered: its recipients are not, the rest stands.
                refused = {r: aiosmtplib.SMTPResponse(exc.code, exc.message) for r in batch}
            for recipient in batch:
                if recipient not in refused:
                    submission.delivered.append(recipient)
                    submission.undelivered.pop(recipient, None)  # delivered on a later try
            for recipient, reply in refused.items():
                submission.undelivered[recipient] = (reply.code, reply.message)
                if 400 <= reply.code < 500:
                    deferred.append(recipient)
        # Sent again only while something was delivered: a request that reached no one is
        # retried whole by the runner instead.
        if not deferred or not submission.delivered:
            return
        pending = deferred


def _maybe_accepted(what: str, submission: Submission | None = None) -> OutcomeUnknown:
    delivered = sorted(submission.delivered) if submission is not None else []
    return OutcomeUnknown(
        f"the SMTP connection failed while the message was being submitted ({what}); the "
        "server may have accepted it, so it is not sent again",
        details={"delivered": delivered} if delivered else None,
    )


def classify(
    exc: aiosmtplib.SMTPException,
    phase: Phase,
    service: str,
    submission: Submission | None = None,
) -> ActionError:
    """One SMTP failure -> one contract outcome (see the module docstring). Once some
    recipients were delivered (`submission`), any failure is final: a retry would send them
    a second copy."""
    if submission is not None and submission.delivered:
        return _maybe_accepted(type(exc).__name__, submission)
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
