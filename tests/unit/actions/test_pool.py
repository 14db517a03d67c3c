"""actions/pool.py: requests are dealt over small pools, and closing closes them all."""

from __future__ import annotations

import httpx

from actions.pool import SHARD_SIZE, ShardedTransport


class CountingShard(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self.limits = limits
        self.requests = 0
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(200, json={"shard": id(self)})

    async def aclose(self) -> None:
        self.closed = True


def shards_of(transport: ShardedTransport) -> list[CountingShard]:
    return [shard for shard in transport.shards if isinstance(shard, CountingShard)]


def test_shards_keep_few_connections_alive_but_may_open_the_whole_limit() -> None:
    transport = ShardedTransport(CountingShard, max_connections=200)
    shards = shards_of(transport)
    assert len(shards) == 200 // SHARD_SIZE
    for shard in shards:
        assert shard.limits.max_keepalive_connections == SHARD_SIZE
        # A shard whose connections are busy opens another instead of queueing the request.
        assert shard.limits.max_connections == 200


def test_a_small_limit_is_one_shard() -> None:
    assert len(ShardedTransport(CountingShard, max_connections=1).shards) == 1


async def test_requests_are_spread_evenly_and_close_closes_every_shard() -> None:
    transport = ShardedTransport(CountingShard, max_connections=8 * SHARD_SIZE)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(8 * 5):
            answer = await client.get("http://shard.test/")
            assert answer.status_code == 200
    shards = shards_of(transport)
    assert [shard.requests for shard in shards] == [5] * 8
    assert all(shard.closed for shard in shards)
