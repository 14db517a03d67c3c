"""broker/connections.py: the open-files limit raised at start, and checked against what the
engine's connections need."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from consumer.broker.connections import (
    OpenFilesLimitTooLow,
    check_open_files,
    descriptors_needed,
    raise_open_files_limit,
)


@pytest.fixture
def limits() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_soft_limit_is_raised_to_the_hard_one(limits: tuple[int, int]) -> None:
    _, hard = limits
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    # Without a hard limit, the engine asks for Linux's default ceiling (fs.nr_open).
    raised = hard if hard != resource.RLIM_INFINITY else 1_048_576
    assert raise_open_files_limit() == (raised, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (raised, hard)


def test_what_does_not_fit_is_refused_naming_the_limit_and_the_need(
    limits: tuple[int, int],
) -> None:
    _, hard = limits
    assert hard == resource.RLIM_INFINITY or hard >= 1024, "a machine that runs Kafka has more"
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # the soft limit alone
    needed = descriptors_needed(brokers=3, blocks=512, http_connections=400)
    assert needed > 1024
    with pytest.raises(OpenFilesLimitTooLow) as refused:
        check_open_files(needed)
    assert "RLIMIT_NOFILE" in str(refused.value) and "is 1024" in str(refused.value)
    assert str(needed) in str(refused.value)
    check_open_files(descriptors_needed(brokers=3, blocks=32, http_connections=400))


def test_the_need_grows_with_blocks_and_brokers_not_partitions() -> None:
    one = descriptors_needed(brokers=1, blocks=32, http_connections=0)
    three = descriptors_needed(brokers=3, blocks=32, http_connections=0)
    assert three - one == 32 * 2 + 3 * 2, "each producer may reach every broker"
