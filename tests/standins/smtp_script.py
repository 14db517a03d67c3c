"""A scripted SMTP server on loopback for the cases a well-behaved aiosmtpd does not produce:
a server that offers no AUTH or no SMTPUTF8, a 454 temporary authentication failure, a 4yz
reply to DATA, a connection cut after the message was sent (its 250 never comes), and a reply
to DATA's final dot that takes its time (a server scanning the message: RFC 5321 4.5.3.2.6
gives it 10 minutes).

It speaks just enough ESMTP (RFC 5321) for aiosmtplib: greeting, EHLO with the scripted
extensions, AUTH PLAIN/LOGIN answered with the scripted reply, MAIL, RCPT, DATA, QUIT.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass
class SmtpScript:
    # EHLO extensions besides the hostname line, e.g. ["AUTH PLAIN LOGIN", "SMTPUTF8"].
    extensions: list[str] = field(default_factory=lambda: ["AUTH PLAIN LOGIN", "8BITMIME"])
    # The reply to AUTH (the whole exchange, whatever the mechanism).
    auth_reply: str = "235 2.7.0 Authentication successful"
    # After the message's final ".": a reply line, or None to cut the connection unanswered.
    data_reply: str | None = "250 2.0.0 queued"
    # Seconds between the final "." and its reply.
    data_reply_delay_s: float = 0.0


class ScriptedSmtpServer:
    """`with ScriptedSmtpServer(SmtpScript(...)) as server:` then connect to `server.port`.
    `messages` counts the messages whose DATA was received whole."""

    def __init__(self, script: SmtpScript) -> None:
        self.script = script
        self.messages = 0
        self.commands: list[str] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        try:
            await reply("220 scripted.test ESMTP")
            while line := await reader.readline():
                command = line.decode(errors="replace").strip()
                verb = command.split(" ", 1)[0].upper()
                self.commands.append(verb)
                if verb in ("EHLO", "HELO"):
                    lines = ["scripted.test", *self.script.extensions]
                    for extension in lines[:-1]:
                        await reply(f"250-{extension}")
                    await reply(f"250 {lines[-1]}")
                elif verb == "AUTH":
                    await reply(self.script.auth_reply)
                elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                    await reply("250 2.1.0 OK")
                elif verb == "DATA":
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    self.messages += 1
                    if self.script.data_reply_delay_s:
                        await asyncio.sleep(self.script.data_reply_delay_s)
                    if self.script.data_reply is None:
                        return  # cut: the message was sent, its answer never comes
                    await reply(self.script.data_reply)
                elif verb == "QUIT":
                    await reply("221 2.0.0 Bye")
                    return
                else:
                    await reply("502 5.5.2 Command not recognized")
        finally:
            writer.close()
