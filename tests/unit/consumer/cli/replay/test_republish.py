"""consumer/cli/replay/republish.py: the copies' headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.cli.replay import replay_headers
from consumer.pipeline.intake import Accepted
from consumer.state.idempotency import reexecutes
from tests.unit.consumer.cli.replay.records import VALID, decoded


@dataclass
class FakeRecord:
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "requests"
    partition: int = 1
    offset: int = 7


def test_replay_headers_mark_the_copy_and_keep_the_request_id() -> None:
    tp = ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert isinstance(VALID, Accepted)
    own_id = replay_headers(FakeRecord([tp, ("replay-of", b"old")]), VALID)
    assert own_id == [tp, ("replay-of", b"requests:1:7")]

    no_id = decoded({"action": "log_message", "project": "p", "params": {"message": "m"}})
    assert isinstance(no_id, Accepted) and no_id.request_id == "requests:1:7"
    headers = replay_headers(FakeRecord([("request-id", b"bad id with spaces\n")]), no_id)
    assert headers == [("request-id", b"requests:1:7"), ("replay-of", b"requests:1:7")]


def test_include_succeeded_marks_copies_to_bypass_the_idempotency_check() -> None:
    assert isinstance(VALID, Accepted)
    # A forged marker on the original is never carried over; only the replay sets it.
    forged = FakeRecord([("replay-reexecute", b"1")])
    plain = replay_headers(forged, VALID)
    assert plain == [("replay-of", b"requests:1:7")] and not reexecutes(plain)
    marked = replay_headers(forged, VALID, reexecute=True)
    assert marked == [("replay-of", b"requests:1:7"), ("replay-reexecute", b"1")]
    assert reexecutes(marked)
    assert not reexecutes([("replay-reexecute", b"0")])
