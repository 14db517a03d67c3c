"""The runtime of actions: what the engine uses to run them (the runner, retries, timeouts,
circuit breakers, idempotency), not what a plugin needs (that is `actions`)."""
