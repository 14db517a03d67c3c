"""Which records a replay republishes: a record's verdict, from its decoding and the request's
latest envelope on the results topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from actions.registry import ActionRegistry
from actions.runtime.preparation import Unrunnable, prepare_request
from consumer.pipeline.intake import Accepted, Rejected


class Verdict(StrEnum):
    REPLAY = "replay"
    SUCCEEDED = "succeeded"  # latest envelope is a success
    FILTERED = "filtered"  # --only-failed / --codes left it out
    INVALID = "invalid"  # would be rejected again: replaying cannot change its outcome
    DUPLICATE = "duplicate"  # another record in the range has the same request_id


@dataclass(frozen=True)
class Latest:
    """A request's latest envelope on the results topic."""

    status: str
    error_code: str | None


@dataclass(frozen=True)
class Selection:
    only_failed: bool = False
    codes: frozenset[str] = frozenset()
    include_succeeded: bool = False


def decide(
    decoded: Accepted | Rejected,
    latest: Latest | None,
    selection: Selection,
    registry: ActionRegistry,
) -> Verdict:
    # Judged as the engine judges it: the same intake limits decoded it, and the runner's own
    # preparation (action, params, fallback) says whether it could ever run.
    if isinstance(decoded, Rejected) or isinstance(
        prepare_request(registry, decoded.request), Unrunnable
    ):
        return Verdict.INVALID
    if latest is not None and latest.status == "success":
        if not selection.include_succeeded:
            return Verdict.SUCCEEDED
        return Verdict.FILTERED if selection.only_failed or selection.codes else Verdict.REPLAY
    if latest is None and (selection.only_failed or selection.codes):
        return Verdict.FILTERED  # no envelope (yet, or expired): not known to have failed
    if latest is not None and selection.codes and latest.error_code not in selection.codes:
        return Verdict.FILTERED
    return Verdict.REPLAY


def parse_latest(value: bytes | None) -> Latest | None:
    """An envelope's status and error code (None when it is not an envelope)."""
    try:
        envelope = json.loads(value or b"")
        status = envelope["status"]
        error = envelope.get("error")
        code = error.get("code") if isinstance(error, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return Latest(str(status), str(code) if code is not None else None)
