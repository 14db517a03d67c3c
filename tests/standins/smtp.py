"""A loopback SMTP server for `send_email` tests: aiosmtpd with AUTH, recording what arrives.

Recipients at `refused.test` are refused (550) and at `deferred.test` deferred (450), as a
real server answers for unknown or temporarily unavailable mailboxes; at `greylist.test` deferred
(451) the first time each address is tried, accepted after (greylisting). More than
`max_recipients` in one transaction get 452 "too many recipients" (RFC 5321 4.5.3.1.10). A
message for a recipient at `slow.test` is answered `slow_data_reply_s` after its final dot (a
server scanning it; RFC 5321 4.5.3.2.6 gives the reply 10 minutes).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: str | None


class _Handler:
    def __init__(self, owner: SmtpStandIn) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == "refused.test":
            return "550 5.1.1 no such user"
        if domain == "deferred.test":
            return "450 4.2.1 mailbox busy, try later"
        with self._owner.lock:
            first_try = address not in self._owner.tried
            self._owner.tried.add(address)
        if domain == "greylist.test" and first_try:
            return "451 4.7.1 greylisted, try again later"
        if len(envelope.rcpt_tos) >= self._owner.max_recipients:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(r.rpartition("@")[2].lower() == "slow.test" for r in envelope.rcpt_tos):
            await asyncio.sleep(self._owner.slow_data_reply_s)
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        login = session.auth_data.login.decode() if session.auth_data else None
        mail = ReceivedMail(
            str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content), login
        )
        with self._owner.lock:
            self._owner.received.append(mail)
        return "250 Message accepted for delivery"


class SmtpStandIn:
    def __init__(self, users: dict[str, str], max_recipients: int = 100) -> None:
        self.users = dict(users)
        self.max_recipients = max_recipients
        self.slow_data_reply_s = 2.0
        self.tried: set[str] = set()
        self.received: list[ReceivedMail] = []
        self.lock = threading.Lock()
        with socket.socket() as probe:  # a free loopback port (aiosmtpd needs one up front)
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=False,  # loopback only; TLS is the client's setting under test
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
