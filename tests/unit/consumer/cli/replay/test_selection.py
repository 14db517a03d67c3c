"""consumer/cli/replay/selection.py: which records a replay republishes, judged as the engine
judges them (its intake limits, the runner's preparation)."""

from __future__ import annotations

import json

import pytest

from actions.registry import default_registry
from consumer.cli.replay import Latest, Selection, Verdict, decide
from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record
from consumer.settings import IntakeSettings
from schemas import ErrorCode
from tests.unit.consumer.cli.replay.records import VALID, VALID_BODY, decoded

REGISTRY = default_registry()
SUCCESS = Latest("success", None)
MISSING = Latest("error", "missing_credentials")
UPSTREAM = Latest("error", "upstream_error")


@pytest.mark.parametrize(
    ("latest", "selection", "verdict"),
    [
        (None, Selection(), Verdict.REPLAY),
        (MISSING, Selection(), Verdict.REPLAY),
        (SUCCESS, Selection(), Verdict.SUCCEEDED),
        (SUCCESS, Selection(include_succeeded=True), Verdict.REPLAY),
        (SUCCESS, Selection(only_failed=True, include_succeeded=True), Verdict.FILTERED),
        (None, Selection(only_failed=True), Verdict.FILTERED),
        (MISSING, Selection(only_failed=True), Verdict.REPLAY),
        (MISSING, Selection(codes=frozenset({"missing_credentials"})), Verdict.REPLAY),
        (UPSTREAM, Selection(codes=frozenset({"missing_credentials"})), Verdict.FILTERED),
        (
            UPSTREAM,
            Selection(only_failed=True, codes=frozenset({"upstream_error"})),
            Verdict.REPLAY,
        ),
    ],
)
def test_decide(latest: Latest | None, selection: Selection, verdict: Verdict) -> None:
    assert isinstance(VALID, Accepted)
    assert decide(VALID, latest, selection, REGISTRY) is verdict


@pytest.mark.parametrize(
    "record",
    [
        decode_record(b"\xff", [], topic="t", partition=0, offset=0, limits=IntakeLimits(100)),
        decoded({"action": "no_such_action", "project": "p", "params": {}}),
        decoded({"action": "send_slack", "project": "p", "params": {"channel": "#x"}}),
        decoded(
            {
                "action": "log_message",
                "project": "p",
                "params": {"message": "m"},
                "fallback": {"action": "no_such_action", "params": {}},
            }
        ),
        decoded(
            {
                "action": "log_message",
                "project": "p",
                "params": {"message": "m"},
                "fallback": {"action": "log_message", "params": {}},
            }
        ),
    ],
    ids=["not-json", "unknown-action", "invalid-params", "unknown-fallback", "invalid-fallback"],
)
def test_records_that_would_fail_again_are_never_replayed(record: object) -> None:
    everything = Selection(include_succeeded=True)
    assert decide(record, MISSING, everything, REGISTRY) is Verdict.INVALID  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"metadata": {"a": {"b": {"c": {"d": {}}}}}}, ErrorCode.INVALID_REQUEST),
        ({"params": {"message": "x" * 300}}, ErrorCode.PAYLOAD_TOO_LARGE),
    ],
    ids=["nested-too-deep", "params-too-large"],
)
def test_replay_decodes_with_the_engines_limits(body: dict[str, object], code: ErrorCode) -> None:
    settings = IntakeSettings(max_json_depth=5, max_params_bytes=256)
    limits = IntakeLimits.from_settings(settings)
    assert limits == IntakeLimits(1_048_576, max_json_depth=5, max_params_bytes=256)
    record = {**VALID_BODY, **body}
    value = json.dumps(record).encode()
    judged = decode_record(value, [], topic="t", partition=0, offset=0, limits=limits)
    assert isinstance(judged, Rejected) and judged.code is code
    # Under the defaults the same record is a valid request: only the shared limits refuse it.
    default = decode_record(value, [], topic="t", partition=0, offset=0, limits=IntakeLimits(10**6))
    assert isinstance(default, Accepted)
    everything = Selection(include_succeeded=True)
    assert decide(judged, MISSING, everything, REGISTRY) is Verdict.INVALID
