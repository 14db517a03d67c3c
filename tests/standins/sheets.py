"""Stand-in for the Google Sheets API v4 ``spreadsheets.values.append`` method.

Errors use Google's JSON error object ``{"error": {"code", "message", "status"}}`` with the
matching HTTP status, because Google (unlike Slack) signals failures through the status code.

A spreadsheet given ``sheet_titles`` has exactly those sheets: a range naming another is
Google's 400 "Unable to parse range"; one without takes any sheet name, "Sheet1" first. A1
notation without a sheet name addresses the first visible sheet. A spreadsheet in
``forbidden`` answers 403 PERMISSION_DENIED (not shared with the token's user). With
USER_ENTERED, a string starting with ``=`` is a formula and a leading apostrophe marks text
(``SheetsAppend.formulas``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response

GOOGLE_JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
VALUE_INPUT_OPTIONS = frozenset({"RAW", "USER_ENTERED"})
INSERT_DATA_OPTIONS = frozenset({"OVERWRITE", "INSERT_ROWS"})
MAJOR_DIMENSIONS = frozenset({"ROWS", "COLUMNS"})
# Range without a sheet name that is still A1 notation refers to the first sheet.
DEFAULT_SHEET = "Sheet1"

UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
PERMISSION_MESSAGE = "The caller does not have permission"
QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute "
    "per user' of service 'sheets.googleapis.com'."
)

_PATH_PREFIX = "/v4/spreadsheets/"
_A1_CELLS = re.compile(r"^(?P<col>[A-Za-z]{0,3})(?P<row>\d*)(?::[A-Za-z]{0,3}\d*)?$")
# Names like "A1" would read as a cell reference, so they are quoted too.
_CELL_REF = re.compile(r"^[A-Za-z]{1,3}\d+$")
_BARE_SHEET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def google_error(
    code: int, status: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        code,
        {"error": {"code": code, "message": message, "status": status}},
        headers,
        content_type=GOOGLE_JSON_CONTENT_TYPE,
    )


def column_letters(index: int) -> str:
    """1 -> "A", 27 -> "AA" (bijective base 26 as spreadsheets number columns)."""
    letters = ""
    while index > 0:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def column_index(letters: str) -> int:
    index = 0
    for char in letters.upper():
        index = index * 26 + (ord(char) - ord("A") + 1)
    return index


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _quote_sheet(name: str) -> str:
    # Google quotes sheet names that are not plain identifiers in the ranges it returns.
    if _BARE_SHEET_NAME.match(name) and not _CELL_REF.match(name):
        return name
    return "'" + name.replace("'", "''") + "'"


def _parse_range(a1: str) -> tuple[str | None, int] | None:
    """(sheet name, first column index) for an A1 range, None if unparsable; the sheet name is
    None when the range names none (the first visible sheet)."""
    if "!" in a1:
        sheet, cells = a1.rsplit("!", 1)
        if sheet.startswith("'") and sheet.endswith("'") and len(sheet) >= 2:
            sheet = sheet[1:-1].replace("''", "'")
    elif _A1_CELLS.match(a1) and (":" in a1 or any(ch.isdigit() for ch in a1)):
        # "A1:C1", "A:C" or "B2" without a sheet name address the first sheet; a bare word
        # such as "Log" is taken as a sheet name instead.
        sheet, cells = None, a1
    else:
        # A bare name ("Sheet1") addresses the whole sheet.
        sheet, cells = a1, ""
    match = _A1_CELLS.match(cells)
    if sheet == "" or match is None:
        return None
    return sheet, column_index(match["col"]) if match["col"] else 1


@dataclass(frozen=True)
class SheetsAppend:
    """One successful append call, for assertions."""

    spreadsheet_id: str
    range: str  # decoded A1 range from the URL
    sheet: str
    values: list[list[object]]
    value_input_option: str
    insert_data_option: str | None
    major_dimension: str
    token: str
    updated_range: str
    # Cells Sheets would evaluate as formulas (USER_ENTERED strings starting with "=").
    formulas: tuple[str, ...] = ()


class SheetsStandIn(StandInServer):
    """``POST /v4/spreadsheets/{id}/values/{range}:append`` as Google documents it.

    ``valid_tokens=None`` accepts any bearer token; ``spreadsheets=None`` accepts any id.
    Rows are appended after the previous rows of the same sheet, starting at row 1.
    """

    def __init__(
        self,
        valid_tokens: set[str] | None = None,
        spreadsheets: set[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.valid_tokens: set[str] | None = set(valid_tokens) if valid_tokens is not None else None
        self.spreadsheets: set[str] | None = set(spreadsheets) if spreadsheets is not None else None
        # Sheet titles per spreadsheet, first visible first; absent: any name, "Sheet1" first.
        self.sheet_titles: dict[str, list[str]] = {}
        # Spreadsheets the token's user may not write: 403 PERMISSION_DENIED.
        self.forbidden: set[str] = set()
        self._rows: dict[str, list[list[object]]] = {}
        self._appends: list[SheetsAppend] = []
        # Per (spreadsheet, sheet): rows used, and the column span of the table so far.
        self._sheet_rows: dict[tuple[str, str], int] = {}
        self._sheet_cols: dict[tuple[str, str], tuple[int, int]] = {}

    # -- scripting -----------------------------------------------------------------------

    def rate_limit_next(self, count: int, retry_after: int | None = None) -> None:
        """Next ``count`` calls get 429 RESOURCE_EXHAUSTED (Retry-After only if given)."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self.inject(count, google_error(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, headers))

    @property
    def rows(self) -> dict[str, list[list[object]]]:
        """Appended rows per spreadsheet id (all sheets, in arrival order)."""
        with self._lock:
            return {sid: [list(r) for r in rows] for sid, rows in self._rows.items()}

    @property
    def appends(self) -> list[SheetsAppend]:
        """Every successful append with its options (valueInputOption etc.)."""
        with self._lock:
            return list(self._appends)

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self._rows.clear()
            self._appends.clear()
            self._sheet_rows.clear()
            self._sheet_cols.clear()
            self.sheet_titles.clear()
            self.forbidden.clear()

    # -- handling ------------------------------------------------------------------------

    def _route(self, path: str) -> tuple[str, str] | None:
        if not path.startswith(_PATH_PREFIX):
            return None
        spreadsheet_id, sep, raw_range = path[len(_PATH_PREFIX) :].partition("/values/")
        if not sep or not spreadsheet_id or "/" in spreadsheet_id:
            return None
        # The client may percent-encode the whole range (including ":"), so decode first.
        decoded = unquote(raw_range)
        if not decoded.endswith(":append"):
            return None
        a1 = decoded.removesuffix(":append")
        return (unquote(spreadsheet_id), a1) if a1 else None

    def handle(self, request: RecordedRequest) -> Response:
        route = self._route(request.path)
        if route is None or request.method != "POST":
            return google_error(404, "NOT_FOUND", "Method not found.")
        spreadsheet_id, a1 = route

        token = request.bearer_token()
        with self._lock:
            valid = token is not None and (self.valid_tokens is None or token in self.valid_tokens)
        if token is None or not valid:
            return google_error(
                401,
                "UNAUTHENTICATED",
                UNAUTHENTICATED_MESSAGE,
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )

        value_input = _first(request.query, "valueInputOption")
        if value_input is None:
            return google_error(
                400, "INVALID_ARGUMENT", "'valueInputOption' is required but not specified"
            )
        if value_input not in VALUE_INPUT_OPTIONS:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'value_input_option' "
                f'(type.googleapis.com/google.apps.sheets.v4.ValueInputOption), "{value_input}"',
            )
        insert_data = _first(request.query, "insertDataOption")
        if insert_data is not None and insert_data not in INSERT_DATA_OPTIONS:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'insert_data_option' "
                f'(type.googleapis.com/google.apps.sheets.v4.InsertDataOption), "{insert_data}"',
            )
        parsed_range = _parse_range(a1)
        if parsed_range is None:
            return google_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {a1}")
        sheet, first_col = parsed_range

        body_or_error = self._parse_body(request.body)
        if isinstance(body_or_error, Response):
            return body_or_error
        values, major = body_or_error

        with self._lock:
            known = self.spreadsheets is None or spreadsheet_id in self.spreadsheets
            forbidden = spreadsheet_id in self.forbidden
            titles = self.sheet_titles.get(spreadsheet_id)
        if not known:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        if forbidden:
            return google_error(403, "PERMISSION_DENIED", PERMISSION_MESSAGE)
        if sheet is None:
            sheet = titles[0] if titles else DEFAULT_SHEET
        elif titles is not None and sheet not in titles:
            return google_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {a1}")

        include_values = _first(request.query, "includeValuesInResponse") == "true"
        return self._append(
            spreadsheet_id=spreadsheet_id,
            a1=a1,
            sheet=sheet,
            first_col=first_col,
            values=values,
            value_input=value_input,
            insert_data=insert_data,
            major=major,
            token=token,
            include_values=include_values,
        )

    def _parse_body(self, raw: bytes) -> tuple[list[list[object]], str] | Response:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(body, dict):
            return google_error(
                400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object."
            )
        values = body.get("values")
        if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received. 'values' must be a list of lists.",
            )
        for r, row in enumerate(values):
            for c, cell in enumerate(row):
                # Cells are scalar protobuf Values; nested lists/objects are rejected.
                if isinstance(cell, (list, dict)):
                    kind = "list_value" if isinstance(cell, list) else "struct_value"
                    return google_error(
                        400, "INVALID_ARGUMENT", f"Invalid values[{r}][{c}]: {kind}"
                    )
        major = body.get("majorDimension", "ROWS")
        if major not in MAJOR_DIMENSIONS:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'data.major_dimension' "
                f'(type.googleapis.com/google.apps.sheets.v4.Dimension), "{major}"',
            )
        rows: list[list[object]] = [list(row) for row in values]
        if major == "COLUMNS" and rows:
            # Column-major input: transpose so storage is always row-major.
            height = max(len(col) for col in rows)
            rows = [[col[i] if i < len(col) else "" for col in rows] for i in range(height)]
        return rows, str(major)

    def _append(
        self,
        *,
        spreadsheet_id: str,
        a1: str,
        sheet: str,
        first_col: int,
        values: list[list[object]],
        value_input: str,
        insert_data: str | None,
        major: str,
        token: str,
        include_values: bool,
    ) -> Response:
        quoted = _quote_sheet(sheet)
        key = (spreadsheet_id, sheet)
        width = max((len(row) for row in values), default=0)
        with self._lock:
            used = self._sheet_rows.get(key, 0)
            table_cols = self._sheet_cols.get(key)
            body: dict[str, Any] = {"spreadsheetId": spreadsheet_id}
            if used and table_cols:
                # tableRange is the table before this append; Google omits it for an empty sheet.
                start, end = table_cols
                body["tableRange"] = (
                    f"{quoted}!{column_letters(start)}1:{column_letters(end)}{used}"
                )
            updates: dict[str, Any] = {"spreadsheetId": spreadsheet_id}
            updated_range = ""
            if values and width:
                first_row, last_row = used + 1, used + len(values)
                last_col = first_col + width - 1
                updated_range = (
                    f"{quoted}!{column_letters(first_col)}{first_row}:"
                    f"{column_letters(last_col)}{last_row}"
                )
                updates.update(
                    updatedRange=updated_range,
                    updatedRows=len(values),
                    updatedColumns=width,
                    updatedCells=sum(len(row) for row in values),
                )
                if include_values:
                    updates["updatedData"] = {
                        "range": updated_range,
                        "majorDimension": "ROWS",
                        "values": values,
                    }
                self._sheet_rows[key] = last_row
                old_start, old_end = table_cols or (first_col, last_col)
                self._sheet_cols[key] = (min(old_start, first_col), max(old_end, last_col))
                self._rows.setdefault(spreadsheet_id, []).extend(list(r) for r in values)
            self._appends.append(
                SheetsAppend(
                    spreadsheet_id=spreadsheet_id,
                    range=a1,
                    sheet=sheet,
                    values=[list(r) for r in values],
                    value_input_option=value_input,
                    insert_data_option=insert_data,
                    major_dimension=major,
                    token=token,
                    updated_range=updated_range,
                    formulas=tuple(
                        cell
                        for row in values
                        for cell in row
                        if value_input == "USER_ENTERED"
                        and isinstance(cell, str)
                        and cell.startswith("=")
                    ),
                )
            )
        body["updates"] = updates
        return json_response(200, body, content_type=GOOGLE_JSON_CONTENT_TYPE)
