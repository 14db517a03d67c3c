"""Stand-in for the Notion API's `POST /v1/pages`, answering as Notion documents.

Errors are Notion's error object, `{"object": "error", "status", "code", "message"}`: 401
`unauthorized` for a missing or unknown bearer token, 400 `missing_version` without a
`Notion-Version` header, 400 `invalid_json` / `validation_error` for a bad body, 404
`object_not_found` for a parent the integration cannot see. Success is a page object.

Scripted with `overload_next`: 529 `service_overload` with `Retry-After`, which Notion documents
beside 429 ("handle HTTP 429 and 529 responses and respect the Retry-After", request-limits);
`fail_after_applying(1, 503, ...)` creates the page and then answers 503, as Notion does when a
request "takes longer than 60 seconds".

Parents are `database_id`, `data_source_id` (Notion-Version 2025-09-03) or `page_id`. A
database's properties have names and ids; the title property's id is always `title`, the others'
ids are their names here. Property keys must be a name or an id of the parent's schema (400
`validation_error` "… is not a property that exists." otherwise), and a database with more than
one data source refuses a `database_id` parent (Notion asks for the data source then).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

_CREATED = "2026-11-26T09:00:00.000Z"
# A database given as a bare id has Notion's default schema: a title column called "Name".
DEFAULT_SCHEMA = {"Name": "title"}
TITLE_ID = "title"


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
    """`databases`: ids (default schema) or id -> {property name: type}; `data_sources`: data
    source id -> its database id (a database without one has one implicitly)."""

    def __init__(
        self,
        valid_tokens: set[str] | None = None,
        databases: set[str] | dict[str, dict[str, str]] | None = None,
        pages: set[str] | None = None,
        data_sources: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.valid_tokens = set(valid_tokens or ())
        schemas = databases if isinstance(databases, dict) else dict.fromkeys(databases or (), None)
        self.databases: dict[str, dict[str, str]] = {
            _canonical(d): dict(schema or DEFAULT_SCHEMA) for d, schema in schemas.items()
        }
        self.pages = {_canonical(p) for p in pages or ()}
        self.data_sources = {
            _canonical(ds): _canonical(db) for ds, db in (data_sources or {}).items()
        }
        self.created: list[dict[str, Any]] = []

    def overload_next(self, count: int, retry_after: int = 1) -> None:
        """The next ``count`` calls get 529 `service_overload` with ``Retry-After`` seconds."""
        answer = notion_error(529, "service_overload", "Notion is overloaded, try again later.")
        answer.headers["Retry-After"] = str(retry_after)
        self.inject(count, answer)

    def _schema(self, parent: dict[str, Any]) -> dict[str, str] | Response | None:
        """The parent's property schema; a Response when Notion would refuse the parent."""
        if "data_source_id" in parent:
            database = self.data_sources.get(_canonical(str(parent["data_source_id"])))
            return self.databases.get(database) if database else None
        if "database_id" in parent:
            database_id = _canonical(str(parent["database_id"]))
            if sum(db == database_id for db in self.data_sources.values()) > 1:
                return notion_error(
                    400,
                    "validation_error",
                    "Databases with multiple data sources are not supported in this API "
                    "version; use a data_source_id parent.",
                )
            return self.databases.get(database_id)
        if _canonical(str(parent.get("page_id", ""))) in self.pages:
            return {TITLE_ID: "title"}
        return None

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
        schema = self._schema(parent)
        if isinstance(schema, Response):
            return schema
        if schema is None:
            return notion_error(
                404,
                "object_not_found",
                "Could not find parent. Make sure it exists and is shared with the integration.",
            )
        if not isinstance(body.get("properties"), dict):
            return notion_error(400, "validation_error", "body.properties should be an object.")
        known = set(schema) | {TITLE_ID}
        for key in body["properties"]:
            if key not in known:
                return notion_error(
                    400, "validation_error", f"{key} is not a property that exists."
                )
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
