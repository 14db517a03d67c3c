"""Who may bypass the idempotency check: a replay that re-executes on purpose.

`execution-engine replay --include-succeeded` marks its copies with this header; the engine
runs them even if their request_id already succeeded. (A writer of the requests topic could set
it too, but such a writer can as well choose a fresh request_id: it grants nothing new.)
"""

from __future__ import annotations

from collections.abc import Sequence

REEXECUTE_HEADER = "replay-reexecute"


def reexecutes(headers: Sequence[tuple[str, bytes]]) -> bool:
    return any(key.lower() == REEXECUTE_HEADER and value == b"1" for key, value in headers)
