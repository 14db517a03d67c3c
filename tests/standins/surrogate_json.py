"""An upstream that answers JSON whose strings are not Unicode: lone surrogate escapes."""

from __future__ import annotations

from tests.standins.base import RecordedRequest, Response, StandInServer

# Valid per RFC 8259's grammar, but `\ud800`, `\udfff` and `\udc00` pair with nothing; raw bytes,
# so nothing on the way "fixes" it first. `\ud83d\ude00` is a proper pair (an emoji).
LONE_SURROGATE_JSON = b'{"id": "a\\ud800b", "\\udfffkey": ["\\udc00", "\\ud83d\\ude00", 1]}'
# What the engine keeps of it: each lone surrogate as the six characters of its escape.
KEPT = {"id": "a\\ud800b", "\\udfffkey": ["\\udc00", "\U0001f600", 1]}


class SurrogateJsonStandIn(StandInServer):
    """Every path answers that JSON: 200, or 422 on `/refuse`."""

    def handle(self, request: RecordedRequest) -> Response:
        status = 422 if request.path == "/refuse" else 200
        return Response(status, LONE_SURROGATE_JSON, {"Content-Type": "application/json"})
