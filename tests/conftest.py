"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumer.ops.logging import reset_logging


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state; each test starts and ends clean."""
    yield
    reset_logging()
