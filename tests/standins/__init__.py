"""Loopback HTTP stand-ins for the engine's external dependencies (tests only)."""

from tests.standins.base import RecordedRequest, Response, StandInServer, json_response
from tests.standins.hashicorp_vault import HashiCorpVaultStandIn
from tests.standins.http_target import HttpTargetStandIn
from tests.standins.notion import NotionStandIn
from tests.standins.sheets import SheetsAppend, SheetsStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.vault import VaultStandIn

__all__ = [
    "HashiCorpVaultStandIn",
    "HttpTargetStandIn",
    "NotionStandIn",
    "RecordedRequest",
    "Response",
    "SheetsAppend",
    "SheetsStandIn",
    "SlackStandIn",
    "StandInServer",
    "VaultStandIn",
    "json_response",
]
