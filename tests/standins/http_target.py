"""Generic HTTP target for the engine's ``http_request`` action (httpbin-like, loopback only)."""

from __future__ import annotations

import html
import json
import time
from typing import Any

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

# Caps keep a typo in a test from hanging a worker thread or allocating gigabytes.
MAX_DELAY_MS = 60_000
MAX_BYTES = 50 * 1024 * 1024


def _int_segment(value: str) -> int | None:
    return int(value) if value.isdigit() else None


class HttpTargetStandIn(StandInServer):
    """Routes: ``/echo``, ``/status/{code}``, ``/delay/{ms}``, ``/redirect?to=&status=``,
    ``/bytes/{n}``, ``/headers``, ``/reflect?pad=&status=&style=``. Every route accepts any
    method."""

    def handle(self, request: RecordedRequest) -> Response:
        parts = request.path.split("/")
        route = parts[1] if len(parts) > 1 else ""
        arg = parts[2] if len(parts) == 3 else None

        if request.path == "/echo":
            return json_response(200, self._echo(request))
        if request.path == "/headers":
            return json_response(200, request.headers)
        if route == "status" and arg is not None:
            code = _int_segment(arg)
            # 1xx cannot be sent as a final answer, so only 200..599 are meaningful here.
            if code is None or not 200 <= code <= 599:
                return json_response(400, {"error": f"invalid status {arg!r}"})
            return json_response(code, {"status": code})
        if route == "delay" and arg is not None:
            ms = _int_segment(arg)
            if ms is None or ms > MAX_DELAY_MS:
                return json_response(400, {"error": f"invalid delay {arg!r}"})
            time.sleep(ms / 1000)
            return json_response(200, {"delayed_ms": ms})
        if request.path == "/redirect":
            return self._redirect(request)
        if request.path == "/reflect":
            return self._reflect(request)
        if route == "bytes" and arg is not None:
            n = _int_segment(arg)
            if n is None or n > MAX_BYTES:
                return json_response(400, {"error": f"invalid size {arg!r}"})
            return Response(200, b"a" * n, {"Content-Type": "text/plain; charset=utf-8"})
        return json_response(404, {"error": "not found", "path": request.path})

    @staticmethod
    def _echo(request: RecordedRequest) -> dict[str, Any]:
        parsed: Any = None
        if request.body:
            try:
                parsed = json.loads(request.body)
            except ValueError:
                parsed = None
        return {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": request.body.decode("utf-8", "replace"),
            "json": parsed,
        }

    @staticmethod
    def _reflect(request: RecordedRequest) -> Response:
        """A page quoting the request's Authorization header as text, after `pad` bytes of
        padding, in one `style`: raw, html (HTML-escaped) or slash (JSON-escaped, with `/` as
        `\\/`, as PHP writes it). Answers `status` (default 200)."""

        def arg(name: str, default: str) -> str:
            return (request.query.get(name) or [default])[0]

        pad, status = _int_segment(arg("pad", "0")), _int_segment(arg("status", "200"))
        if pad is None or pad > MAX_BYTES or status is None or not 200 <= status <= 599:
            return json_response(400, {"error": "need a numeric ?pad= and ?status="})
        quoted = request.headers.get("authorization", "")
        style = arg("style", "raw")
        if style == "html":
            quoted = html.escape(quoted)
        elif style == "slash":
            quoted = json.dumps(quoted)[1:-1].replace("/", "\\/")
        body = ("x" * pad + quoted + " and more text after it").encode()
        return Response(status, body, {"Content-Type": "text/plain; charset=utf-8"})

    @staticmethod
    def _redirect(request: RecordedRequest) -> Response:
        target = (request.query.get("to") or [""])[0]
        status_arg = (request.query.get("status") or ["302"])[0]
        status = _int_segment(status_arg)
        if not target or status is None or not 300 <= status <= 399:
            return json_response(400, {"error": "need ?to=<url> and a 3xx ?status="})
        return json_response(status, {"location": target}, {"Location": target})
