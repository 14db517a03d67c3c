"""The fleet's state on a Redis or Valkey server (`EXECUTION_STATE_URL`), through valkey-py
(redis-py's fork: the same API, no OpenTelemetry import, ~30 % less CPU per command here).

One client, one `StateGuard` in front of every call, and the parts the actions use: shared
rate-limit schedules (`RateStore`), circuits (`CircuitStore`) and idempotency records
(`SuccessStore`, backed by an in-process copy for when the store is away). Keys are
`<EXECUTION_STATE_PREFIX>:<kind>:...`, so several groups can share one server.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import valkey.asyncio as aiovalkey

from actions.errors import StateUnavailable
from actions.ratelimit import Rate, RateKey
from actions.runtime.circuit import CircuitState, SharedCircuit
from actions.runtime.idempotency import Claim, LocalSuccesses
from consumer.secrets.redaction import SECRETS, current_scope
from consumer.state import scripts
from consumer.state.guard import StateGuard

_MAX_CONNECTIONS = 128
_STATES: dict[int, CircuitState] = {
    scripts.CLOSED: "closed",
    scripts.OPEN: "open",
    scripts.HALF_OPEN: "half_open",
}


def connect(
    url: str,
    *,
    username: str | None,
    password: str | None,
    ca_file: str | None,
) -> aiovalkey.Valkey:
    """A client for `url`; user and password from the URL or the settings (both registered
    as secrets), TLS for `rediss://` verified against `ca_file` (else the system's CAs)."""
    parts = urlsplit(url)
    for secret in (password, parts.password and unquote(parts.password)):
        if secret:
            SECRETS.add_engine_secret(secret)
    options: dict[str, Any] = {
        # No timeouts of the client's own: `StateGuard` bounds every call as a whole (connect,
        # wait for a pooled connection, send, read), and each of the client's would be one
        # more timer per command (measured: a third of its CPU).
        "decode_responses": False,
        # A dead connection is found by the next call's timeout; no background pings.
        "health_check_interval": 0,
    }
    if username:
        options["username"] = username
    if password:
        options["password"] = password
    if parts.scheme == "rediss":
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        if ca_file:
            options["ssl_ca_certs"] = ca_file
    # At most this many connections; a call finding none free waits (within its timeout).
    # An unbounded pool opens one per concurrent call, a bounded non-blocking one fails them.
    pool = aiovalkey.BlockingConnectionPool.from_url(
        url, max_connections=_MAX_CONNECTIONS, timeout=None, **options
    )
    return aiovalkey.Valkey(connection_pool=pool)


class RemoteState:
    """The Redis/Valkey side of the fleet's state (see the module doc)."""

    def __init__(self, client: aiovalkey.Valkey, guard: StateGuard, prefix: str) -> None:
        self.client = client
        self.guard = guard
        self.prefix = prefix
        self._gcra = client.register_script(scripts.GCRA_RESERVE)
        self._gcra_pause = client.register_script(scripts.GCRA_PAUSE)
        self._admit = client.register_script(scripts.CIRCUIT_ADMIT)
        self._record = client.register_script(scripts.CIRCUIT_RECORD)

    def key(self, kind: str, *parts: str) -> str:
        return ":".join((self.prefix, kind, *parts))

    async def ping(self) -> bool:
        try:
            return bool(await self.guard.run(self.client.ping))
        except StateUnavailable:
            return False

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- rate limits (actions.ratelimit.RateStore) ------------------------------------------

    async def reserve(
        self, slots: Sequence[tuple[RateKey, Rate]], max_wait_s: float | None
    ) -> tuple[bool, float]:
        keys = [self.key("rate", slot.limit, slot.key) for slot, _ in slots]
        args: list[int] = [-1 if max_wait_s is None else max(int(max_wait_s * 1e6), 0)]
        args += _rate_args(slots)
        granted, wait_us = await self.guard.run(lambda: self._gcra(keys=keys, args=args))
        return bool(granted), int(wait_us) / 1e6

    async def pause(self, slots: Sequence[tuple[RateKey, Rate]], seconds: float) -> None:
        keys = [self.key("rate", slot.limit, slot.key) for slot, _ in slots]
        args = [max(int(seconds * 1e6), 0), *_rate_args(slots)]
        await self.guard.run(lambda: self._gcra_pause(keys=keys, args=args))

    # -- circuits (actions.runtime.circuit.CircuitStore) ----------------------------------

    async def admit(self, upstream: str, open_s: float) -> SharedCircuit:
        keys = [self.key("circuit", upstream), self.key("probe", upstream)]
        state, left_ms, probe, *failures = await self.guard.run(
            lambda: self._admit(keys=keys, args=[int(open_s * 1000)])
        )
        return SharedCircuit(
            _STATES[int(state)],
            int(left_ms) / 1000,
            probe=bool(probe),
            failures=int(failures[0]) if failures else 0,
        )

    async def record(
        self, upstream: str, *, probe: bool, failed: bool | None, threshold: int, open_s: float
    ) -> SharedCircuit:
        keys = [self.key("circuit", upstream), self.key("probe", upstream)]
        open_ms = int(open_s * 1000)
        verdict = -1 if failed is None else int(failed)
        # A failure count this old says nothing of the upstream now.
        expiry_ms = max(open_ms * 10, 60_000)
        state, left_ms, changed = await self.guard.run(
            lambda: self._record(
                keys=keys, args=[verdict, int(probe), threshold, open_ms, expiry_ms]
            )
        )
        return SharedCircuit(_STATES[int(state)], int(left_ms) / 1000, changed=bool(changed))


def _rate_args(slots: Sequence[tuple[RateKey, Rate]]) -> list[int]:
    """Per slot its interval in us (0 only for an unpaced key: a paced one never rounds to 0)
    and its burst."""
    args: list[int] = []
    for _, rate in slots:
        interval_us = int(rate.interval_s * 1e6)
        args += [max(interval_us, 1) if rate.interval_s > 0 else 0, rate.burst]
    return args


class SharedSuccesses:
    """`actions.runtime.idempotency.SuccessStore` on the fleet's store, with this process's own
    `LocalSuccesses` beside it: every success is written to both, so while the store is away
    the check still covers what this process saw. Never raises."""

    def __init__(self, remote: RemoteState, local: LocalSuccesses) -> None:
        self._remote = remote
        self._local = local
        self._claim = remote.client.register_script(scripts.CLAIM)
        self._release = remote.client.register_script(scripts.RELEASE)

    def _key(self, key: str) -> str:
        return self._remote.key("done", key)

    async def claim(self, key: str, owner: str, lease_s: float) -> Claim:
        local = self._local.claim_now(key, owner, lease_s)
        if local.data is not None:
            return local
        try:
            found = await self._remote.guard.run(
                lambda: self._claim(keys=[self._key(key)], args=[owner, int(lease_s * 1000)])
            )
        except StateUnavailable:
            return local
        if found[0] == 1:
            return Claim(mine=True)
        if len(found) > 1:
            data = json.loads(found[1])
            # Kept here too: the check still holds for it if the store goes away.
            self._local.succeeded_now(key, data, lease_s)
            return Claim(data=data)
        return Claim()

    async def succeeded(self, key: str, owner: str, data: Mapping[str, Any], ttl_s: float) -> None:
        self._local.succeeded_now(key, dict(data), ttl_s)
        # Scrubbed like the envelope it came from (the record's scope: the engine's secrets and
        # the credentials the record used): the store never holds a token.
        text = current_scope().scrub_text(json.dumps(data, default=str, separators=(",", ":")))
        value = b"s" + text.encode("utf-8", "surrogatepass")
        with contextlib.suppress(StateUnavailable):
            await self._remote.guard.run(
                lambda: self._remote.client.set(self._key(key), value, px=int(ttl_s * 1000))
            )

    async def release(self, key: str, owner: str) -> None:
        await self._local.release(key, owner)
        with contextlib.suppress(StateUnavailable):
            await self._remote.guard.run(lambda: self._release(keys=[self._key(key)], args=[owner]))
