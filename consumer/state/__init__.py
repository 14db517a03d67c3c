"""Fleet state: in-process by default, Redis/Valkey when `EXECUTION_STATE_URL` is set."""

from consumer.state.fleet import FleetState, InProcessState, ValkeyState, build_state
from consumer.state.guard import StateGuard
from consumer.state.settings import StateSettings

__all__ = [
    "FleetState",
    "InProcessState",
    "StateGuard",
    "StateSettings",
    "ValkeyState",
    "build_state",
]
