"""Stand-in for the Slack Web API (``chat.postMessage``).

Mirrors the documented Web API contract: API-level errors are HTTP 200 with
``{"ok": false, "error": "<code>"}``; only rate limiting uses an HTTP status (429 plus
``Retry-After``). Engines must therefore inspect ``ok`` rather than the status code.

Documented cases it answers: ``not_in_channel`` (the bot is not a member of a private
channel), ``is_archived``, ``missing_scope`` (with ``needed``/``provided``), and, scripted with
``error_next``, ``rate_limited``, ``team_added_to_org``, ``fatal_error`` / ``internal_error``
(optionally after posting: Slack says "some aspect of the operation" may have succeeded).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

DEFAULT_CHANNELS = {"#general": "C024BE91L"}
# Slack truncates texts above this many characters, posts them, and warns `message_truncated`
# (api.slack.com/changelog/2018-04-truncating-really-long-messages).
MAX_TEXT_LENGTH = 40_000
# First ts handed out; Slack ts values are "<unix seconds>.<6-digit sequence>" strings.
_FIRST_TS_MICROS = 1_732_600_000_000_100
_TS_STEP_MICROS = 100


def _ok(payload: dict[str, Any], warnings: list[str]) -> Response:
    body: dict[str, Any] = {"ok": True, **payload}
    if warnings:
        body["warning"] = ",".join(warnings)
        body["response_metadata"] = {"warnings": warnings}
    return json_response(200, body)


def _error(code: str, warnings: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error": code}
    if warnings:
        body["warning"] = ",".join(warnings)
        body["response_metadata"] = {"warnings": warnings}
    return json_response(200, body)


class SlackStandIn(StandInServer):
    """``POST /chat.postMessage`` (also ``/api/chat.postMessage``) as Slack documents it.

    ``valid_tokens=None`` accepts any non-empty bearer token; ``channels=None`` uses
    ``{"#general": "C024BE91L"}``. Channels resolve by "#name", "name" or the ID itself.
    """

    def __init__(
        self,
        valid_tokens: set[str] | None = None,
        channels: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.valid_tokens: set[str] | None = set(valid_tokens) if valid_tokens is not None else None
        self.channels: dict[str, str] = dict(DEFAULT_CHANNELS if channels is None else channels)
        self._revoked: set[str] = set()
        self._messages: list[dict[str, Any]] = []
        self._next_ts = _FIRST_TS_MICROS
        # Channel ids the bot is not a member of, and archived ones.
        self.not_member: set[str] = set()
        self.archived: set[str] = set()
        # The token's scopes; None: every scope chat.postMessage needs.
        self.scopes: set[str] | None = None
        # Scripted ok:false answers: (code, Retry-After or None, post the message first).
        self._errors: list[tuple[str, int | None, bool]] = []

    # -- scripting -----------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        """Make ``token`` answer ``invalid_auth`` from now on (simulates rotation)."""
        with self._lock:
            self._revoked.add(token)
            if self.valid_tokens is not None:
                self.valid_tokens.discard(token)

    def add_token(self, token: str) -> None:
        """Accept ``token`` (e.g. the rotated one the Vault now hands out)."""
        with self._lock:
            self._revoked.discard(token)
            if self.valid_tokens is not None:
                self.valid_tokens.add(token)

    def rate_limit_next(self, count: int, retry_after: int = 1) -> None:
        """Next ``count`` calls get Slack's documented 429 with ``Retry-After`` seconds."""
        self.fail_next(
            count,
            429,
            headers={"Retry-After": str(retry_after)},
            body={"ok": False, "error": "ratelimited"},
        )

    def error_next(
        self, count: int, code: str, *, retry_after: int | None = None, after_post: bool = False
    ) -> None:
        """Next ``count`` calls answer HTTP 200 ``{"ok": false, "error": code}`` (with
        ``Retry-After`` if given); ``after_post`` posts the message first, as a ``fatal_error``
        may follow a message that was in fact posted."""
        with self._lock:
            self._errors.extend([(code, retry_after, after_post)] * count)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Posted messages: channel (ID), text, thread_ts, blocks, token, ts."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._messages.clear()
            self._errors.clear()
            self.not_member.clear()
            self.archived.clear()
            self.scopes = None

    # -- handling ------------------------------------------------------------------------

    def _token_ok(self, token: str) -> bool:
        with self._lock:
            if token in self._revoked:
                return False
            return self.valid_tokens is None or token in self.valid_tokens

    def _resolve_channel(self, channel: str) -> str | None:
        for name, channel_id in self.channels.items():
            bare = name.lstrip("#")
            if channel in (name, bare, f"#{bare}", channel_id):
                return channel_id
        return None

    def _next_timestamp(self) -> str:
        with self._lock:
            micros = self._next_ts
            self._next_ts += _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def handle(self, request: RecordedRequest) -> Response:
        method = request.path.removeprefix("/api").lstrip("/")
        if method != "chat.postMessage":
            return _error("unknown_method")

        warnings: list[str] = []
        # Slack accepts arguments in the query string as well as the body; body wins.
        args: dict[str, Any] = {k: v[0] for k, v in request.query.items() if v}
        content_type = request.headers.get("content-type", "").lower()
        form_token: str | None = None
        if content_type.startswith("application/json"):
            if "charset" not in content_type:
                # Slack answers but warns when the JSON charset is not declared.
                warnings.append("missing_charset")
            try:
                parsed = json.loads(request.body) if request.body else {}
            except ValueError:
                return _error("invalid_json", warnings)
            if not isinstance(parsed, dict):
                return _error("json_not_object", warnings)
            args.update(parsed)
        elif request.body:
            form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
            # Form-encoded calls may carry the token as an argument; JSON calls may not.
            form_token = form.pop("token", None)
            if isinstance(form.get("blocks"), str):
                try:
                    form["blocks"] = json.loads(form["blocks"])
                except ValueError:
                    return _error("invalid_blocks_format", warnings)
            args.update(form)

        token = request.bearer_token() or form_token
        if not token:
            return _error("not_authed", warnings)
        if not self._token_ok(token):
            return _error("invalid_auth", warnings)

        with self._lock:
            scripted = self._errors.pop(0) if self._errors else None
            scopes = None if self.scopes is None else set(self.scopes)
        if scopes is not None and "chat:write" not in scopes:
            body = {
                "ok": False,
                "error": "missing_scope",
                "needed": "chat:write",
                "provided": ",".join(sorted(scopes)),
            }
            return json_response(200, body)
        channel_arg = args.get("channel")
        channel_id = self._resolve_channel(channel_arg) if isinstance(channel_arg, str) else None
        if channel_id is None:
            return _error("channel_not_found", warnings)
        if channel_id in self.archived:
            return _error("is_archived", warnings)
        if channel_id in self.not_member:
            return _error("not_in_channel", warnings)
        if scripted is not None:
            code, retry_after, after_post = scripted
            if after_post:
                self._post(args, channel_id, token)
            answer = _error(code, warnings)
            if retry_after is not None:
                answer.headers["Retry-After"] = str(retry_after)
            return answer

        text = args.get("text")
        blocks = args.get("blocks")
        attachments = args.get("attachments")
        if not text and not blocks and not attachments:
            return _error("no_text", warnings)
        if isinstance(text, str) and len(text) > MAX_TEXT_LENGTH:
            args["text"] = text[:MAX_TEXT_LENGTH]
            warnings.append("message_truncated")

        ts, message = self._post(args, channel_id, token)
        return _ok({"channel": channel_id, "ts": ts, "message": message}, warnings)

    def _post(
        self, args: dict[str, Any], channel_id: str, token: str
    ) -> tuple[str, dict[str, Any]]:
        text = args.get("text")
        blocks = args.get("blocks")
        ts = self._next_timestamp()
        thread_ts = args.get("thread_ts")
        with self._lock:
            self._messages.append(
                {
                    "channel": channel_id,
                    "text": text,
                    "thread_ts": thread_ts,
                    "blocks": blocks,
                    "token": token,
                    "ts": ts,
                }
            )
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": text if isinstance(text, str) else "",
            "ts": ts,
            "bot_id": "B0STANDIN1",
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
        if blocks:
            message["blocks"] = blocks
        return ts, message
