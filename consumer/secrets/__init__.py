"""What must never be shown: the engine's own secrets and the tenant credentials a record used,
and the scrubbing of every output of them. The lowest room: every other may use it."""
