"""Run a stand-in in the foreground, e.g. for docker compose.

python -m tests.standins vault --port 8200 --token PROJECT:SERVICE:SECRET [...]
python -m tests.standins hashicorp --port 8300 --client-token T --token PROJECT:SERVICE:SECRET
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from tests.standins.base import StandInServer
from tests.standins.hashicorp_vault import HashiCorpVaultStandIn
from tests.standins.http_target import HttpTargetStandIn
from tests.standins.sheets import SheetsStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.vault import VaultStandIn


def _parse_vault_token(value: str) -> tuple[str, str, str]:
    # maxsplit=2 so secrets may themselves contain ":".
    parts = value.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected PROJECT:SERVICE:SECRET, got {value!r}")
    return parts[0], parts[1], parts[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.standins")
    sub = parser.add_subparsers(dest="kind", required=True)

    def add(name: str, default_port: int, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        # Default to loopback; a container must pass --host 0.0.0.0 explicitly.
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=default_port)
        return p

    vault = add("vault", 8200, "PURAIFY Vault Engine token endpoint")
    vault.add_argument(
        "--token",
        action="append",
        default=[],
        type=_parse_vault_token,
        metavar="PROJECT:SERVICE:SECRET",
    )
    vault.add_argument("--required-bearer", default=None)

    kv = add("hashicorp", 8300, "HashiCorp Vault KV v2 (secrets at secret/puraify/P/S)")
    kv.add_argument("--client-token", action="append", default=[], help="accepted X-Vault-Token")
    kv.add_argument(
        "--token",
        action="append",
        default=[],
        type=_parse_vault_token,
        metavar="PROJECT:SERVICE:SECRET",
    )

    slack = add("slack", 8201, "Slack Web API chat.postMessage")
    slack.add_argument("--valid-token", action="append", default=None)
    slack.add_argument("--channel", action="append", default=None, metavar="NAME=ID")

    sheets = add("sheets", 8202, "Google Sheets values.append")
    sheets.add_argument("--valid-token", action="append", default=None)
    sheets.add_argument("--spreadsheet", action="append", default=None)

    add("http", 8203, "generic HTTP target")
    return parser


def build_server(args: argparse.Namespace) -> StandInServer:
    # argparse gives None (flag absent) or a list; None means "accept any" in the stand-ins.
    valid_tokens: set[str] | None = set(getattr(args, "valid_token", None) or []) or None
    if args.kind == "vault":
        secrets = {(p, s): secret for p, s, secret in args.token}
        return VaultStandIn(secrets, args.required_bearer, host=args.host, port=args.port)
    if args.kind == "hashicorp":
        kv_secrets = {("secret", f"puraify/{p}/{s}"): {"token": v} for p, s, v in args.token}
        return HashiCorpVaultStandIn(
            kv_secrets, set(args.client_token), host=args.host, port=args.port
        )
    if args.kind == "slack":
        channels: dict[str, str] | None = None
        if args.channel:
            channels = {}
            for item in args.channel:
                name, _, channel_id = item.partition("=")
                channels[name] = channel_id
        return SlackStandIn(valid_tokens, channels, host=args.host, port=args.port)
    if args.kind == "sheets":
        ids: set[str] | None = set(args.spreadsheet) if args.spreadsheet else None
        return SheetsStandIn(valid_tokens, ids, host=args.host, port=args.port)
    return HttpTargetStandIn(host=args.host, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = build_server(args)

    def _terminate(signum: int, frame: FrameType | None) -> None:
        # docker stop sends SIGTERM; turn it into KeyboardInterrupt for a clean shutdown.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    server.start()
    print(f"{args.kind} stand-in listening on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
