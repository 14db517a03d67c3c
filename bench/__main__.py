"""`python -m bench [SCENARIO ...]`: run the benchmarks and print every figure.

Scenarios: passthrough, io, hol, memory, scaleout, tenants, rpc, fairness, partitions (default:
all of them, in that order). `tenants` runs in process and needs no broker.
Needs the `bench` extra: `.venv/bin/pip install -e '.[bench]'` (or `make bench`).
The broker is KAFKA_BOOTSTRAP_SERVERS when set, else one started by consumer/localkafka.
Exactly-once's own costs (on vs off, slow-key latency): `python -m bench.exactly_once --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.processes import ROOT
from bench.report import say
from bench.runner import Context

SCENARIOS = (
    "passthrough",
    "io",
    "hol",
    "memory",
    "scaleout",
    "tenants",
    "rpc",
    "fairness",
    "partitions",
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every option's default."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "scenarios",
        nargs="*",
        choices=[*SCENARIOS, "all"],
        default="all",
        metavar="SCENARIO",
        help=f"one or more of {', '.join(SCENARIOS)}, or all",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small counts everywhere (for checking the harness, not for figures)",
    )
    g = p.add_argument_group("1. pass-through")
    g.add_argument("--records", type=int, default=50_000, help="requests")
    g.add_argument("--rounds", type=int, default=2, help="rounds of alternated runs")
    g.add_argument(
        "--floor-transactions",
        choices=("yes", "no"),
        default="yes",
        help="the raw floor commits each batch in a transaction (as the engine does with "
        "exactly-once)",
    )
    g.add_argument(
        "--kinds",
        default="engine,raw,faststream,engine-quiet",
        help="which consumers to run, alternated (engine-quiet: the engine at log level "
        "warning, to show what logging costs)",
    )
    g = p.add_argument_group("2. I/O-bound")
    g.add_argument("--io-requests", type=int, default=2000, help="http_request calls")
    g.add_argument("--io-keys", type=int, default=500, help="distinct keys")
    g.add_argument("--io-latency-ms", type=int, default=50, help="the target's answer delay")
    g = p.add_argument_group("3. head-of-line")
    g.add_argument("--hol-seconds", type=float, default=15.0, help="how long requests arrive")
    g.add_argument("--hol-rate", type=float, default=100.0, help="fast requests per second")
    g = p.add_argument_group("4. memory")
    g.add_argument("--backlog", type=int, default=500_000, help="records preloaded")
    g.add_argument(
        "--steady-seconds",
        type=float,
        default=300.0,
        help="steady-state phase length (300 = 5 minutes)",
    )
    g.add_argument("--steady-rate", type=float, default=500.0, help="requests per second")
    g = p.add_argument_group("5. scale-out")
    g.add_argument("--scale-records", type=int, default=60_000, help="records preloaded")
    g.add_argument("--scale-processes", default="1,2,3", help="engine process counts to run")
    g = p.add_argument_group("6. tenants")
    g.add_argument(
        "--tenant-records", type=int, default=2000, help="records per per-record measurement"
    )
    g = p.add_argument_group("7. rpc")
    g.add_argument("--rpc-rates", default="100,1000", help="calls per second, one run each")
    g.add_argument("--rpc-seconds", type=float, default=10.0, help="how long each run calls")
    g.add_argument(
        "--rpc-background",
        type=float,
        default=100.0,
        help="other Gateways' requests per second (their envelopes share the results topic)",
    )
    g.add_argument("--rpc-rounds", type=int, default=2, help="rounds of alternated runs")
    g = p.add_argument_group("8. fairness")
    g.add_argument("--fair-a-calls", type=int, default=2000, help="project A's slow calls")
    g.add_argument("--fair-a-latency-ms", type=int, default=2000, help="A's target's answer delay")
    g.add_argument("--fair-b-calls", type=int, default=60, help="project B's quick calls")
    g.add_argument(
        "--fair-b-delay-s", type=float, default=1.0, help="B publishes this long after A"
    )
    g.add_argument(
        "--fair-over-buffer",
        type=int,
        default=1000,
        help="EXECUTION_MAX_BUFFERED of the round where A's backlog exceeds the buffer",
    )
    g = p.add_argument_group("9. partitions")
    g.add_argument(
        "--widths", default="128,512", help="requests topic partition counts, one engine each"
    )
    g.add_argument(
        "--wide-records", type=int, default=20_000, help="live records, then backlog records"
    )
    g.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU measured over")
    g = p.add_argument_group("all scenarios")
    g.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the engines' stdout (JSON log lines) in the run directory",
    )
    g.add_argument(
        "--profile",
        action="store_true",
        help="attach py-spy to every engine (collapsed stacks in the run directory; "
        "`python -m bench.profile FILE` summarises one)",
    )
    g.add_argument(
        "--state",
        choices=("none", "valkey", "both"),
        default="none",
        help="fleet state: none (in-process), valkey (every engine gets EXECUTION_STATE_URL of "
        "a local Valkey server started for the run), both (each scenario without, then with: "
        "figures of the second run are labelled '+store')",
    )
    g.add_argument(
        "--engine-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra setting for every engine started (repeatable)",
    )
    return p


def chosen_scenarios(args: argparse.Namespace) -> list[str]:
    # argparse gives the default as the bare string "all", chosen ones as a list.
    names = [args.scenarios] if isinstance(args.scenarios, str) else args.scenarios
    return list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))


def _quick(args: argparse.Namespace) -> None:
    args.records = min(args.records, 5000)
    args.rounds = 1
    args.io_requests = min(args.io_requests, 400)
    args.io_keys = min(args.io_keys, 100)
    args.hol_seconds = min(args.hol_seconds, 5.0)
    args.backlog = min(args.backlog, 20_000)
    args.steady_seconds = min(args.steady_seconds, 20.0)
    args.scale_records = min(args.scale_records, 6000)
    args.tenant_records = min(args.tenant_records, 300)
    args.rpc_seconds = min(args.rpc_seconds, 3.0)
    args.fair_a_calls = min(args.fair_a_calls, 400)
    args.fair_over_buffer = min(args.fair_over_buffer, 200)
    args.wide_records = min(args.wide_records, 2000)
    args.idle_seconds = min(args.idle_seconds, 3.0)


def reproduce_command(argv: Sequence[str]) -> str:
    return " ".join([".venv/bin/python", "-m", "bench", *map(shlex.quote, argv)])


def _environment() -> str:
    import aiokafka  # noqa: PLC0415
    from aiokafka.util import NO_EXTENSIONS  # noqa: PLC0415

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    load1, load5, _ = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, commit {commit}, "
        f"{os.cpu_count()} CPUs, load average {load1:.1f} (1 min) {load5:.1f} (5 min), "
        f"Python {platform.python_version()}, aiokafka {aiokafka.__version__} "
        f"({'pure Python' if NO_EXTENSIONS else 'C extensions'})"
    )


async def _run(
    args: argparse.Namespace, ctx: Context, chosen: list[str], store_url: str | None = None
) -> None:
    if store_url is None:
        await _run_scenarios(args, ctx, chosen)
        return
    if args.state == "both":
        await _run_scenarios(args, ctx, chosen)
    first = len(ctx.report.figures)
    ctx.engine_env["EXECUTION_STATE_URL"] = store_url
    try:
        await _run_scenarios(args, ctx, chosen)
    finally:
        del ctx.engine_env["EXECUTION_STATE_URL"]
    if args.state == "both":
        ctx.report.figures[first:] = [
            dataclasses.replace(figure, scenario=f"{figure.scenario} +store")
            for figure in ctx.report.figures[first:]
        ]


async def _run_scenarios(args: argparse.Namespace, ctx: Context, chosen: list[str]) -> None:
    from bench import (  # noqa: PLC0415
        fairness,
        head_of_line,
        io_bound,
        memory,
        partitions,
        passthrough,
        rpc,
        scale_out,
        tenants,
    )

    for name in chosen:
        if name == "passthrough":
            await passthrough.run(
                ctx,
                args.records,
                args.rounds,
                args.floor_transactions == "yes",
                tuple(args.kinds.split(",")),
            )
        elif name == "io":
            await io_bound.run(ctx, args.io_requests, args.io_keys, args.io_latency_ms)
        elif name == "hol":
            await head_of_line.run(ctx, args.hol_seconds, args.hol_rate)
        elif name == "memory":
            await memory.run(ctx, args.backlog, args.steady_seconds, args.steady_rate)
        elif name == "scaleout":
            processes = [int(n) for n in args.scale_processes.split(",")]
            await scale_out.run(ctx, args.scale_records, processes)
        elif name == "tenants":
            await tenants.run(ctx.report, args.tenant_records)
        elif name == "rpc":
            rates = [float(rate) for rate in args.rpc_rates.split(",")]
            await rpc.run(ctx, rates, args.rpc_seconds, args.rpc_background, args.rpc_rounds)
        elif name == "fairness":
            await fairness.run(
                ctx,
                a_calls=args.fair_a_calls,
                a_latency_ms=args.fair_a_latency_ms,
                b_calls=args.fair_b_calls,
                b_delay_s=args.fair_b_delay_s,
                over_buffer=args.fair_over_buffer,
            )
        elif name == "partitions":
            widths = [int(n) for n in args.widths.split(",")]
            await partitions.run(ctx, widths, args.wide_records, args.idle_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.quick:
        _quick(args)
    chosen = chosen_scenarios(args)
    from consumer.localkafka import kafka_broker  # noqa: PLC0415

    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    command = reproduce_command(argv)
    say(f"reproduce: {command}")
    say(f"measured:  {_environment()}")
    say(f"run dir:   {log_dir} (stderr of every process; stdout too with --keep-logs)")
    extra = dict(item.split("=", 1) for item in args.engine_env)
    # `tenants` alone needs no broker.
    broker = kafka_broker() if set(chosen) - {"tenants"} else contextlib.nullcontext("")
    with broker as bootstrap, contextlib.ExitStack() as stack:
        ctx = Context(
            bootstrap, log_dir, keep_stdout=args.keep_logs, engine_env=extra, profile=args.profile
        )
        store_url = None
        if args.state != "none":
            from tests.valkey_server import valkey_server  # noqa: PLC0415

            store_url = stack.enter_context(valkey_server()).url
            say(f"fleet state: Valkey at {store_url} ({args.state})")
        try:
            asyncio.run(_run(args, ctx, chosen, store_url))
        finally:
            say("\n== figures\n")
            say(ctx.report.table())
            say(f"\nreproduce: {command}")
            say(f"measured:  {_environment()}")
    failed = [f for f in ctx.report.figures if f.met is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
