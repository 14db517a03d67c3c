"""The client for Python Gateways: publish a request, await its envelope on the process's own
reply topic (`ExecutionClient`, `ReplyTimeout`)."""

from consumer.client.execution import ExecutionClient, ReplyTimeout

__all__ = ["ExecutionClient", "ReplyTimeout"]
