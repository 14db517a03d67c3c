"""Behaviour of the loopback stand-ins, exercised over real sockets with httpx."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.standins import (
    HttpTargetStandIn,
    RecordedRequest,
    SheetsStandIn,
    SlackStandIn,
    StandInServer,
    VaultStandIn,
)
from tests.standins.__main__ import build_parser, build_server

TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as c:
        yield c


# -- base ------------------------------------------------------------------------------------


def test_start_binds_free_loopback_port_and_stop_closes_it() -> None:
    server = HttpTargetStandIn().start()
    try:
        assert server.running
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
        assert httpx.get(f"{server.base_url}/status/200", timeout=TIMEOUT).status_code == 200
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server._requested_port}/echo", timeout=TIMEOUT)


def test_two_servers_get_distinct_ports() -> None:
    with HttpTargetStandIn() as a, HttpTargetStandIn() as b:
        assert a.port != b.port


def test_records_method_raw_path_query_lowercased_headers_and_body(
    target: HttpTargetStandIn, client: httpx.Client
) -> None:
    client.post(
        f"{target.base_url}/echo?a=1&a=2&b=",
        json={"k": "v"},
        headers={"X-Custom-Header": "Yes"},
    )
    client.get(f"{target.base_url}/status/204")
    [first, second] = target.requests
    assert isinstance(first, RecordedRequest)
    assert first.method == "POST"
    assert first.path == "/echo"
    assert first.query == {"a": ["1", "2"], "b": [""]}
    assert first.headers["x-custom-header"] == "Yes"
    assert "X-Custom-Header" not in first.headers
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"k": "v"}
    assert second.method == "GET" and second.path == "/status/204" and second.body == b""


def test_requests_is_a_snapshot_and_clear_forgets(
    target: HttpTargetStandIn, client: httpx.Client
) -> None:
    client.get(f"{target.base_url}/echo")
    snapshot = target.requests
    snapshot.clear()
    assert len(target.requests) == 1
    target.fail_next(3, 503)
    target.clear()
    assert target.requests == []
    assert target.pending_failures == 0
    assert client.get(f"{target.base_url}/echo").status_code == 200


def test_fail_next_answers_count_requests_then_recovers(
    target: HttpTargetStandIn, client: httpx.Client
) -> None:
    target.fail_next(2, 503, headers={"Retry-After": "7"}, body={"error": "down"})
    statuses = [client.get(f"{target.base_url}/status/201") for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 201]
    assert statuses[0].headers["retry-after"] == "7"
    assert statuses[0].headers["content-type"].startswith("application/json")
    assert statuses[0].json() == {"error": "down"}
    assert statuses[2].json() == {"status": 201}
    # Failed requests are still recorded: tests count retries through them.
    assert len(target.requests) == 3


def test_fail_next_queues_in_order_with_bytes_and_empty_bodies(
    target: HttpTargetStandIn, client: httpx.Client
) -> None:
    target.fail_next(1, 500, body=b"boom")
    target.fail_next(1, 502)
    first = client.get(f"{target.base_url}/echo")
    second = client.get(f"{target.base_url}/echo")
    assert (first.status_code, first.content) == (500, b"boom")
    assert (second.status_code, second.content) == (502, b"")
    assert second.headers["content-length"] == "0"
    assert client.get(f"{target.base_url}/echo").status_code == 200


def test_delay_s_slows_every_answer(target: HttpTargetStandIn, client: httpx.Client) -> None:
    target.delay_s = 0.3
    start = time.monotonic()
    assert client.get(f"{target.base_url}/echo").status_code == 200
    assert time.monotonic() - start >= 0.3
    target.fail_next(1, 500)
    start = time.monotonic()
    assert client.get(f"{target.base_url}/echo").status_code == 500
    assert time.monotonic() - start >= 0.3


def test_delay_s_triggers_client_read_timeout(target: HttpTargetStandIn) -> None:
    target.delay_s = 1.0
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{target.base_url}/echo", timeout=httpx.Timeout(0.2))


def test_keep_alive_reuses_one_connection(target: HttpTargetStandIn, client: httpx.Client) -> None:
    responses = [
        client.get(f"{target.base_url}/echo"),
        client.post(f"{target.base_url}/echo", content=b"x" * 1000),
        client.get(f"{target.base_url}/status/404"),
        client.head(f"{target.base_url}/bytes/10"),
        client.get(f"{target.base_url}/status/204"),
        client.get(f"{target.base_url}/bytes/5"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 200, 204, 200]
    assert all(r.http_version == "HTTP/1.1" for r in responses)
    assert responses[-1].text == "aaaaa"
    assert target.connection_count == 1
    assert len(target.requests) == 6


def test_head_sends_length_without_body(target: HttpTargetStandIn, client: httpx.Client) -> None:
    response = client.head(f"{target.base_url}/bytes/10")
    assert response.status_code == 200
    assert response.headers["content-length"] == "10"
    assert response.content == b""


def test_chunked_request_body_is_read(target: HttpTargetStandIn, client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    response = client.post(f"{target.base_url}/echo", content=chunks())
    assert target.requests[0].headers.get("transfer-encoding") == "chunked"
    assert response.json()["body"] == "hello world"
    # The connection stays usable after a chunked request.
    assert client.get(f"{target.base_url}/echo").status_code == 200
    assert target.connection_count == 1


def test_stop_cuts_keep_alive_and_restart_reuses_port(client: httpx.Client) -> None:
    server = HttpTargetStandIn().start()
    url = f"{server.base_url}/echo"
    assert client.get(url).status_code == 200
    server.stop()
    with pytest.raises(httpx.TransportError):
        client.get(url)
    server.start()
    try:
        assert server.base_url + "/echo" == url
        assert client.get(url).status_code == 200
    finally:
        server.stop()


def test_wait_for_requests(target: HttpTargetStandIn, client: httpx.Client) -> None:
    with pytest.raises(TimeoutError):
        target.wait_for_requests(1, timeout=0.05)
    client.get(f"{target.base_url}/echo")
    assert [r.path for r in target.wait_for_requests(1, timeout=1)] == ["/echo"]


def test_base_server_answers_404_json() -> None:
    with StandInServer() as server:
        response = httpx.get(f"{server.base_url}/anything", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


# -- vault -----------------------------------------------------------------------------------


def test_vault_returns_token_and_404_when_absent(client: httpx.Client) -> None:
    with VaultStandIn({("proj", "slack"): "xoxb-1"}) as vault:
        ok = client.get(f"{vault.base_url}/vault/token/proj/slack")
        missing = client.get(f"{vault.base_url}/vault/token/proj/sheets")
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json; charset=utf-8"
    assert ok.json() == {"token": "xoxb-1"}
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found"}


def test_vault_set_and_remove_token(client: httpx.Client) -> None:
    with VaultStandIn() as vault:
        url = f"{vault.base_url}/vault/token/p/s"
        assert client.get(url).status_code == 404
        vault.set_token("p", "s", "one")
        assert client.get(url).json() == {"token": "one"}
        vault.set_token("p", "s", "two")  # rotation
        assert client.get(url).json() == {"token": "two"}
        assert vault.tokens == {("p", "s"): "two"}
        vault.remove_token("p", "s")
        assert client.get(url).status_code == 404


def test_vault_decodes_percent_encoded_segments(client: httpx.Client) -> None:
    with VaultStandIn({("my proj", "svc"): "t"}) as vault:
        response = client.get(f"{vault.base_url}/vault/token/my%20proj/svc")
    assert response.json() == {"token": "t"}


def test_vault_required_bearer(client: httpx.Client) -> None:
    with VaultStandIn({("p", "s"): "secret"}, required_bearer="engine-token") as vault:
        url = f"{vault.base_url}/vault/token/p/s"
        missing = client.get(url)
        wrong = client.get(url, headers={"Authorization": "Bearer nope"})
        basic = client.get(url, headers={"Authorization": "Basic engine-token"})
        right = client.get(url, headers={"Authorization": "Bearer engine-token"})
    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert right.status_code == 200
    assert right.json() == {"token": "secret"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/vault/token/p"),
        ("GET", "/vault/token/p/s/extra"),
        ("GET", "/vault/token//s"),
        ("GET", "/health"),
        ("POST", "/vault/token/p/s"),
        ("DELETE", "/vault/token/p/s"),
    ],
)
def test_vault_anything_else_is_404(client: httpx.Client, method: str, path: str) -> None:
    with VaultStandIn({("p", "s"): "secret"}) as vault:
        response = client.request(method, f"{vault.base_url}{path}")
    assert response.status_code == 404


def test_vault_fail_next(client: httpx.Client) -> None:
    with VaultStandIn({("p", "s"): "secret"}) as vault:
        vault.fail_next(1, 503)
        url = f"{vault.base_url}/vault/token/p/s"
        assert client.get(url).status_code == 503
        assert client.get(url).json() == {"token": "secret"}
        assert len(vault.requests) == 2


# -- slack -----------------------------------------------------------------------------------

SLACK_CHANNELS = {"#general": "C024BE91L", "random": "C024BE92M"}


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn({"xoxb-good", "xoxb-other"}, SLACK_CHANNELS) as server:
        yield server


def post_message(
    client: httpx.Client,
    slack: SlackStandIn,
    payload: dict[str, Any],
    token: str | None = "xoxb-good",
    method: str = "chat.postMessage",
) -> httpx.Response:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post(f"{slack.base_url}/{method}", json=payload, headers=headers)


def test_slack_post_message_success(slack: SlackStandIn, client: httpx.Client) -> None:
    response = post_message(client, slack, {"channel": "#general", "text": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["ok"] is True
    assert body["channel"] == "C024BE91L"
    assert body["ts"] == "1732600000.000100"
    assert body["message"]["text"] == "hi"
    assert body["message"]["type"] == "message"
    assert body["message"]["ts"] == body["ts"]
    assert "warning" not in body


def test_slack_ts_unique_and_increasing(slack: SlackStandIn, client: httpx.Client) -> None:
    ts = [
        post_message(client, slack, {"channel": "#general", "text": str(i)}).json()["ts"]
        for i in range(5)
    ]
    assert len(set(ts)) == 5
    assert [float(t) for t in ts] == sorted(float(t) for t in ts)
    assert all(len(t.split(".")[1]) == 6 for t in ts)


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ("#general", "C024BE91L"),
        ("general", "C024BE91L"),
        ("C024BE91L", "C024BE91L"),
        ("random", "C024BE92M"),
        ("#random", "C024BE92M"),
    ],
)
def test_slack_channel_resolution(
    slack: SlackStandIn, client: httpx.Client, channel: str, expected: str
) -> None:
    body = post_message(client, slack, {"channel": channel, "text": "x"}).json()
    assert body["ok"] is True
    assert body["channel"] == expected


@pytest.mark.parametrize(
    ("payload", "token", "error"),
    [
        ({"channel": "#general", "text": "x"}, None, "not_authed"),
        ({"channel": "#general", "text": "x"}, "xoxb-unknown", "invalid_auth"),
        ({"channel": "#nope", "text": "x"}, "xoxb-good", "channel_not_found"),
        ({"text": "x"}, "xoxb-good", "channel_not_found"),
        ({"channel": "#general"}, "xoxb-good", "no_text"),
        ({"channel": "#general", "text": ""}, "xoxb-good", "no_text"),
    ],
)
def test_slack_api_errors_are_http_200(
    slack: SlackStandIn,
    client: httpx.Client,
    payload: dict[str, Any],
    token: str | None,
    error: str,
) -> None:
    response = post_message(client, slack, payload, token=token)
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": error}
    assert slack.messages == []


def test_slack_truncates_a_long_text_posts_it_and_warns(
    slack: SlackStandIn, client: httpx.Client
) -> None:
    body = post_message(client, slack, {"channel": "#general", "text": "x" * 40_001}).json()
    assert body["ok"] is True and body["response_metadata"]["warnings"] == ["message_truncated"]
    assert [len(m["text"]) for m in slack.messages] == [40_000]


def test_slack_blocks_without_text_is_accepted(slack: SlackStandIn, client: httpx.Client) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    body = post_message(client, slack, {"channel": "C024BE91L", "blocks": blocks}).json()
    assert body["ok"] is True
    assert body["message"]["blocks"] == blocks
    assert slack.messages[0]["blocks"] == blocks


def test_slack_records_messages(slack: SlackStandIn, client: httpx.Client) -> None:
    post_message(client, slack, {"channel": "general", "text": "a"})
    reply = post_message(
        client,
        slack,
        {"channel": "#general", "text": "b", "thread_ts": "1732600000.000100"},
        token="xoxb-other",
    ).json()
    assert reply["message"]["thread_ts"] == "1732600000.000100"
    assert slack.messages == [
        {
            "channel": "C024BE91L",
            "text": "a",
            "thread_ts": None,
            "blocks": None,
            "token": "xoxb-good",
            "ts": "1732600000.000100",
        },
        {
            "channel": "C024BE91L",
            "text": "b",
            "thread_ts": "1732600000.000100",
            "blocks": None,
            "token": "xoxb-other",
            "ts": "1732600000.000200",
        },
    ]
    assert slack.requests[0].headers["authorization"] == "Bearer xoxb-good"
    slack.clear()
    assert slack.messages == [] and slack.requests == []


def test_slack_revoke_then_new_token(slack: SlackStandIn, client: httpx.Client) -> None:
    payload = {"channel": "#general", "text": "x"}
    assert post_message(client, slack, payload).json()["ok"] is True
    slack.revoke("xoxb-good")
    assert post_message(client, slack, payload).json() == {"ok": False, "error": "invalid_auth"}
    assert post_message(client, slack, payload, token="xoxb-rotated").json()["ok"] is False
    slack.add_token("xoxb-rotated")
    assert post_message(client, slack, payload, token="xoxb-rotated").json()["ok"] is True
    assert [m["token"] for m in slack.messages] == ["xoxb-good", "xoxb-rotated"]


def test_slack_revoke_applies_when_any_token_is_accepted(client: httpx.Client) -> None:
    with SlackStandIn() as slack:
        payload = {"channel": "#general", "text": "x"}
        assert post_message(client, slack, payload, token="anything").json()["ok"] is True
        slack.revoke("anything")
        body = post_message(client, slack, payload, token="anything").json()
    assert body == {"ok": False, "error": "invalid_auth"}


def test_slack_rate_limit_next(slack: SlackStandIn, client: httpx.Client) -> None:
    slack.rate_limit_next(2, retry_after=3)
    payload = {"channel": "#general", "text": "x"}
    limited = [post_message(client, slack, payload) for _ in range(2)]
    for response in limited:
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json() == {"ok": False, "error": "ratelimited"}
    ok = post_message(client, slack, payload)
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert len(slack.messages) == 1


def test_slack_rate_limit_default_retry_after(slack: SlackStandIn, client: httpx.Client) -> None:
    slack.rate_limit_next(1)
    response = post_message(client, slack, {"channel": "#general", "text": "x"})
    assert response.headers["retry-after"] == "1"


def test_slack_unknown_method(slack: SlackStandIn, client: httpx.Client) -> None:
    response = post_message(client, slack, {}, method="chat.nope")
    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": "unknown_method"}


def test_slack_accepts_api_prefix(slack: SlackStandIn, client: httpx.Client) -> None:
    payload = {"channel": "#general", "text": "x"}
    response = post_message(client, slack, payload, method="api/chat.postMessage")
    assert response.json()["ok"] is True


def test_slack_invalid_json(slack: SlackStandIn, client: httpx.Client) -> None:
    headers = {"Authorization": "Bearer xoxb-good", "Content-Type": "application/json"}
    bad = client.post(f"{slack.base_url}/chat.postMessage", content=b"{nope", headers=headers)
    array = client.post(f"{slack.base_url}/chat.postMessage", content=b"[]", headers=headers)
    assert bad.json()["error"] == "invalid_json"
    assert array.json()["error"] == "json_not_object"


def test_slack_warns_on_missing_charset(slack: SlackStandIn, client: httpx.Client) -> None:
    response = client.post(
        f"{slack.base_url}/chat.postMessage",
        json={"channel": "#general", "text": "x"},
        headers={"Authorization": "Bearer xoxb-good"},  # httpx sends plain application/json
    )
    body = response.json()
    assert body["ok"] is True
    assert body["warning"] == "missing_charset"
    assert body["response_metadata"] == {"warnings": ["missing_charset"]}


def test_slack_form_encoded_with_token_argument(slack: SlackStandIn, client: httpx.Client) -> None:
    response = client.post(
        f"{slack.base_url}/chat.postMessage",
        data={"token": "xoxb-good", "channel": "#general", "text": "form"},
    )
    assert response.json()["ok"] is True
    assert slack.messages[0]["text"] == "form"
    assert slack.messages[0]["token"] == "xoxb-good"


# -- sheets ----------------------------------------------------------------------------------

SHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"


@pytest.fixture
def sheets() -> Iterator[SheetsStandIn]:
    with SheetsStandIn({"ya29.good"}, {SHEET_ID}) as server:
        yield server


def append(
    client: httpx.Client,
    sheets: SheetsStandIn,
    values: object,
    *,
    sheet_range: str = "Sheet1%21A1%3AC1",
    spreadsheet_id: str = SHEET_ID,
    token: str | None = "ya29.good",
    params: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response:
    query = (
        {"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"} if params is None else params
    )
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = f"{sheets.base_url}/v4/spreadsheets/{spreadsheet_id}/values/{sheet_range}:append"
    return client.post(
        url,
        params=query,
        json={"values": values} if body is None else body,
        headers=headers,
    )


def test_sheets_append_success_and_growing_rows(
    sheets: SheetsStandIn, client: httpx.Client
) -> None:
    first = append(client, sheets, [["a", 1, True]])
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=UTF-8"
    assert first.json() == {
        "spreadsheetId": SHEET_ID,
        "updates": {
            "spreadsheetId": SHEET_ID,
            "updatedRange": "Sheet1!A1:C1",
            "updatedRows": 1,
            "updatedColumns": 3,
            "updatedCells": 3,
        },
    }
    second = append(client, sheets, [["b", 2, False], ["c", 3, None]]).json()
    assert second["tableRange"] == "Sheet1!A1:C1"
    assert second["updates"]["updatedRange"] == "Sheet1!A2:C3"
    assert second["updates"]["updatedRows"] == 2
    assert second["updates"]["updatedCells"] == 6
    third = append(client, sheets, [["d", 4, 0]]).json()
    assert third["tableRange"] == "Sheet1!A1:C3"
    assert third["updates"]["updatedRange"] == "Sheet1!A4:C4"
    assert sheets.rows == {SHEET_ID: [["a", 1, True], ["b", 2, False], ["c", 3, None], ["d", 4, 0]]}


def test_sheets_rows_are_counted_per_sheet(sheets: SheetsStandIn, client: httpx.Client) -> None:
    append(client, sheets, [["x"]])
    other = append(client, sheets, [["y", "z"]], sheet_range="Log%21B1").json()
    assert other["updates"]["updatedRange"] == "Log!B1:C1"
    again = append(client, sheets, [["w"]], sheet_range="Log").json()
    assert again["tableRange"] == "Log!B1:C1"
    assert again["updates"]["updatedRange"] == "Log!A2:A2"
    quoted = append(client, sheets, [["q"]], sheet_range="%27My%20Sheet%27%21A1").json()
    assert quoted["updates"]["updatedRange"] == "'My Sheet'!A1:A1"
    no_sheet = append(client, sheets, [["n"]], sheet_range="A1%3AC1").json()
    assert no_sheet["updates"]["updatedRange"] == "Sheet1!A2:A2"  # first sheet, after "x"
    assert [a.sheet for a in sheets.appends] == ["Sheet1", "Log", "Log", "My Sheet", "Sheet1"]


def test_sheets_unencoded_range_and_options_recorded(
    sheets: SheetsStandIn, client: httpx.Client
) -> None:
    response = append(
        client,
        sheets,
        [["=1+1"]],
        sheet_range="Sheet1!A1:C1",
        params={"valueInputOption": "USER_ENTERED"},
    )
    assert response.status_code == 200
    [call] = sheets.appends
    assert call.range == "Sheet1!A1:C1"
    assert call.value_input_option == "USER_ENTERED"
    assert call.insert_data_option is None
    assert call.token == "ya29.good"
    assert call.updated_range == "Sheet1!A1:A1"
    append(client, sheets, [["v"]])
    assert sheets.appends[1].value_input_option == "RAW"
    assert sheets.appends[1].insert_data_option == "INSERT_ROWS"
    # The recorded path keeps the client's encoding.
    assert sheets.requests[1].path.endswith("/values/Sheet1%21A1%3AC1:append")


def test_sheets_columns_major_dimension(sheets: SheetsStandIn, client: httpx.Client) -> None:
    body = {"values": [["a", "b"], [1, 2]], "majorDimension": "COLUMNS"}
    result = append(client, sheets, None, body=body).json()
    assert result["updates"]["updatedRange"] == "Sheet1!A1:B2"
    assert sheets.rows[SHEET_ID] == [["a", 1], ["b", 2]]


def test_sheets_include_values_in_response(sheets: SheetsStandIn, client: httpx.Client) -> None:
    params = {"valueInputOption": "RAW", "includeValuesInResponse": "true"}
    result = append(client, sheets, [["a"]], params=params).json()
    assert result["updates"]["updatedData"] == {
        "range": "Sheet1!A1:A1",
        "majorDimension": "ROWS",
        "values": [["a"]],
    }


@pytest.mark.parametrize("token", [None, "ya29.bad"])
def test_sheets_unauthenticated(
    sheets: SheetsStandIn, client: httpx.Client, token: str | None
) -> None:
    response = append(client, sheets, [["a"]], token=token)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == 401
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request had invalid authentication credentials")
    assert sheets.rows == {}


def test_sheets_unknown_spreadsheet(sheets: SheetsStandIn, client: httpx.Client) -> None:
    response = append(client, sheets, [["a"]], spreadsheet_id="missing")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    }


def test_sheets_any_spreadsheet_when_unrestricted(client: httpx.Client) -> None:
    with SheetsStandIn() as sheets:
        response = append(client, sheets, [["a"]], spreadsheet_id="whatever", token="any")
    assert response.status_code == 200
    assert sheets.rows == {"whatever": [["a"]]}


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({}, {"values": [["a"]]}),
        ({"valueInputOption": "BOGUS"}, {"values": [["a"]]}),
        ({"valueInputOption": "RAW", "insertDataOption": "BOGUS"}, {"values": [["a"]]}),
        ({"valueInputOption": "RAW"}, {}),
        ({"valueInputOption": "RAW"}, {"values": ["a", "b"]}),
        ({"valueInputOption": "RAW"}, {"values": "a"}),
        ({"valueInputOption": "RAW"}, {"values": [[["nested"]]]}),
        ({"valueInputOption": "RAW"}, {"values": [["a"]], "majorDimension": "DIAGONAL"}),
    ],
)
def test_sheets_invalid_argument(
    sheets: SheetsStandIn,
    client: httpx.Client,
    params: dict[str, str],
    body: dict[str, Any],
) -> None:
    response = append(client, sheets, None, params=params, body=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert sheets.appends == []


def test_sheets_missing_value_input_option_message(
    sheets: SheetsStandIn, client: httpx.Client
) -> None:
    response = append(client, sheets, [["a"]], params={})
    assert "valueInputOption" in response.json()["error"]["message"]


def test_sheets_rate_limit_next(sheets: SheetsStandIn, client: httpx.Client) -> None:
    sheets.rate_limit_next(1)
    sheets.rate_limit_next(1, retry_after=5)
    plain = append(client, sheets, [["a"]])
    with_header = append(client, sheets, [["a"]])
    ok = append(client, sheets, [["a"]])
    assert plain.status_code == 429
    assert "retry-after" not in plain.headers
    assert plain.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert plain.json()["error"]["code"] == 429
    assert with_header.status_code == 429
    assert with_header.headers["retry-after"] == "5"
    assert ok.status_code == 200
    assert sheets.rows == {SHEET_ID: [["a"]]}


def test_sheets_wrong_path_or_method(sheets: SheetsStandIn, client: httpx.Client) -> None:
    get = client.get(f"{sheets.base_url}/v4/spreadsheets/{SHEET_ID}/values/Sheet1:append")
    other = client.post(f"{sheets.base_url}/v4/spreadsheets/{SHEET_ID}/values/Sheet1")
    assert get.status_code == 404 and other.status_code == 404
    assert get.json()["error"]["status"] == "NOT_FOUND"


# -- http target -----------------------------------------------------------------------------


def test_target_echo(target: HttpTargetStandIn, client: httpx.Client) -> None:
    response = client.put(
        f"{target.base_url}/echo?x=1", json={"a": [1, 2]}, headers={"X-Trace": "t1"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["method"] == "PUT"
    assert body["path"] == "/echo"
    assert body["query"] == {"x": ["1"]}
    assert body["headers"]["x-trace"] == "t1"
    assert json.loads(body["body"]) == {"a": [1, 2]}
    assert body["json"] == {"a": [1, 2]}
    text = client.request("DELETE", f"{target.base_url}/echo", content=b"plain").json()
    assert text["method"] == "DELETE"
    assert text["body"] == "plain"
    assert text["json"] is None


@pytest.mark.parametrize("code", [200, 201, 400, 404, 418, 500, 503])
def test_target_status(target: HttpTargetStandIn, client: httpx.Client, code: int) -> None:
    response = client.post(f"{target.base_url}/status/{code}")
    assert response.status_code == code
    assert response.json() == {"status": code}


def test_target_status_204_has_no_body(target: HttpTargetStandIn, client: httpx.Client) -> None:
    response = client.get(f"{target.base_url}/status/204")
    assert response.status_code == 204
    assert response.content == b""


def test_target_status_rejects_bad_codes(target: HttpTargetStandIn, client: httpx.Client) -> None:
    assert client.get(f"{target.base_url}/status/99").status_code == 400
    assert client.get(f"{target.base_url}/status/abc").status_code == 400


def test_target_delay(target: HttpTargetStandIn, client: httpx.Client) -> None:
    start = time.monotonic()
    response = client.get(f"{target.base_url}/delay/250")
    assert time.monotonic() - start >= 0.25
    assert response.json() == {"delayed_ms": 250}


def test_target_redirect(target: HttpTargetStandIn, client: httpx.Client) -> None:
    to = f"{target.base_url}/status/200"
    default = client.get(f"{target.base_url}/redirect", params={"to": to})
    assert default.status_code == 302
    assert default.headers["location"] == to
    moved = client.get(f"{target.base_url}/redirect", params={"to": to, "status": "301"})
    assert moved.status_code == 301
    followed = client.get(
        f"{target.base_url}/redirect", params={"to": to, "status": "307"}, follow_redirects=True
    )
    assert followed.status_code == 200
    assert [r.status_code for r in followed.history] == [307]
    assert client.get(f"{target.base_url}/redirect").status_code == 400


def test_target_bytes(target: HttpTargetStandIn, client: httpx.Client) -> None:
    response = client.get(f"{target.base_url}/bytes/1024")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b"a" * 1024
    assert client.get(f"{target.base_url}/bytes/0").content == b""


def test_target_headers(target: HttpTargetStandIn, client: httpx.Client) -> None:
    body = client.get(f"{target.base_url}/headers", headers={"X-API-Key": "k"}).json()
    assert body["x-api-key"] == "k"
    assert body["host"] == f"127.0.0.1:{target.port}"


def test_target_unknown_path(target: HttpTargetStandIn, client: httpx.Client) -> None:
    response = client.get(f"{target.base_url}/nope")
    assert response.status_code == 404


# -- command line ----------------------------------------------------------------------------


def test_cli_builds_vault_with_tokens() -> None:
    args = build_parser().parse_args(
        ["vault", "--port", "0", "--token", "proj:slack:xoxb:with:colons", "--token", "p:s:t"]
    )
    server = build_server(args)
    assert isinstance(server, VaultStandIn)
    assert server.host == "127.0.0.1"
    with server:
        response = httpx.get(f"{server.base_url}/vault/token/proj/slack", timeout=TIMEOUT)
    assert response.json() == {"token": "xoxb:with:colons"}
    assert server.tokens == {("proj", "slack"): "xoxb:with:colons", ("p", "s"): "t"}


def test_cli_defaults_and_rejects_malformed_token() -> None:
    args = build_parser().parse_args(["vault", "--host", "0.0.0.0"])
    assert (args.host, args.port) == ("0.0.0.0", 8200)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["vault", "--token", "missing-parts"])
