"""Stand-in for the Notion API's `POST /v1/pages`, answering as Notion documents.

Errors are Notion's error object, `{"object": "error", "status", "code", "message"}`: 401
`unauthorized` for a missing or unknown bearer token, 400 `missing_version` without a
`Notion-Version` header, 400 `invalid_json` / `validation_error` for a bad body, 404
`object_not_found` for a parent the integration cannot see. Success is a page object.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

_CREATED = "2026-11-26T09:00:00.000Z"


def notion_error(status: int, code: str, message: str) -> Response:
    return json_response(
        status,
        {
            "object": "error",
            "status": status,
            "code": code,
            "message": message,
            "request_id": str(uuid.uuid4()),
        },
    )


def _canonical(notion_id: str) -> str:
    return notion_id.replace("-", "").lower()


class NotionStandIn(StandInServer):
    def __init__(
        self,
        valid_tokens: set[str] | None = None,
        databases: set[str] | None = None,
        pages: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.valid_tokens = set(valid_tokens or ())
        self.databases = {_canonical(d) for d in databases or ()}
        self.pages = {_canonical(p) for p in pages or ()}
        self.created: list[dict[str, Any]] = []

    def handle(self, request: RecordedRequest) -> Response:
        if request.path != "/v1/pages" or request.method != "POST":
            return notion_error(400, "invalid_request_url", "Invalid request URL.")
        token = request.bearer_token()
        if token is None or token not in self.valid_tokens:
            return notion_error(401, "unauthorized", "API token is invalid.")
        if not request.headers.get("notion-version"):
            return notion_error(
                400, "missing_version", "Notion-Version header failed validation: required."
            )
        try:
            body = json.loads(request.body)
        except ValueError:
            return notion_error(400, "invalid_json", "Error parsing JSON body.")
        if not isinstance(body, dict) or not isinstance(body.get("parent"), dict):
            return notion_error(400, "validation_error", "body.parent should be defined.")
        parent = body["parent"]
        if "database_id" in parent:
            known = _canonical(str(parent["database_id"])) in self.databases
        else:
            known = _canonical(str(parent.get("page_id", ""))) in self.pages
        if not known:
            return notion_error(
                404,
                "object_not_found",
                "Could not find parent. Make sure it exists and is shared with the integration.",
            )
        if not isinstance(body.get("properties"), dict):
            return notion_error(400, "validation_error", "body.properties should be an object.")
        page_id = str(uuid.uuid4())
        with self._lock:
            self.created.append(body)
        return json_response(
            200,
            {
                "object": "page",
                "id": page_id,
                "created_time": _CREATED,
                "last_edited_time": _CREATED,
                "parent": parent,
                "archived": False,
                "properties": body["properties"],
                "url": f"https://www.notion.so/{page_id.replace('-', '')}",
            },
        )
