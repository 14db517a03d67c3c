"""`execution-engine replay`: re-execute a range of the requests topic, beside the live group.

How: the selected request records are published again, byte for byte, to the requests topic,
with a `replay-of: <topic>:<partition>:<offset>` header, and the live engine group executes them
like any other record. So the replay never joins or commits for the engine's group, nothing
runs outside the engine's limits and retries, and the invariant holds as it is: every consumed
record (the original and its copy) gets exactly one envelope. The copy keeps its request_id (a
request without one in its body gets the original's id in a `request-id` header), so its
envelope correlates with the original's and becomes the request's latest envelope.

What: records are read with a group-less, read_committed consumer (assign + seek; by offsets
and/or by time). A record's fate is decided by its latest envelope on the results topic (the
one with the highest offset; envelopes are keyed by request_id, so they share a partition):
succeeded requests are skipped unless `include_succeeded` (so a replay never re-sends a Slack
message by accident); `only_failed` keeps only requests whose latest envelope is an error
(`codes` narrows the error codes); records that would be rejected again (not a valid request,
unknown action, invalid params, of the request or its fallback: intake with the engine's
`IntakeLimits` and the runner's own `prepare_request` judge) are reported and never republished.

Modules, one job each: `selection` (a record's verdict), `ranges` (which offsets), `reading`
(requests and latest envelopes), `republish` (the copies, and waiting for their envelopes),
`report` (progress and the summary), `replayer` (`replay()`, in that order), `command` (the
command's handler; its arguments are in `consumer.cli.command`).
"""

from consumer.cli.replay.ranges import OffsetRange, parse_offset_range
from consumer.cli.replay.replayer import ReplayOptions, replay
from consumer.cli.replay.report import PartitionReport, Progress, ReplayReport, format_report
from consumer.cli.replay.republish import REPLAY_HEADER, replay_headers
from consumer.cli.replay.selection import Latest, Selection, Verdict, decide

__all__ = [
    "REPLAY_HEADER",
    "Latest",
    "OffsetRange",
    "PartitionReport",
    "Progress",
    "ReplayOptions",
    "ReplayReport",
    "Selection",
    "Verdict",
    "decide",
    "format_report",
    "parse_offset_range",
    "replay",
    "replay_headers",
]
