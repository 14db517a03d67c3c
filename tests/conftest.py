"""Suite-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state; each test starts and ends clean."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
