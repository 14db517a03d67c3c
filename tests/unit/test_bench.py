"""bench/: the benchmark harness is not run by the suite; its entry point and pure helpers are."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench.io_bound import order_violations
from bench.kafka_io import Seen
from bench.memory import slope_mb_per_min
from bench.processes import Child
from bench.report import Report, median, percentile


@pytest.mark.parametrize(
    "module",
    [
        "bench.passthrough",
        "bench.io_bound",
        "bench.head_of_line",
        "bench.memory",
        "bench.scale_out",
        "bench.floor",
        "bench.faststream_app",
        "bench.http_target",
        "bench.profile",
        "bench.exactly_once",
    ],
)
def test_every_bench_module_imports_without_the_bench_extra(module: str) -> None:
    assert importlib.import_module(module).__doc__


def test_help_lists_every_scenario() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for scenario in cli.SCENARIOS:
        assert scenario in done.stdout


def test_scenarios_default_to_all_in_order_and_keep_the_order_given() -> None:
    assert cli.chosen_scenarios(cli.parser().parse_args([])) == list(cli.SCENARIOS)
    chosen = cli.chosen_scenarios(cli.parser().parse_args(["memory", "io", "memory"]))
    assert chosen == ["memory", "io"]


def test_quick_shrinks_every_count() -> None:
    args = cli.parser().parse_args(["--quick"])
    cli._quick(args)
    assert args.records <= 5000 and args.backlog <= 20_000 and args.steady_seconds <= 20


def test_reproduce_command_quotes_arguments() -> None:
    command = cli.reproduce_command(["io", "--engine-env", "A=b c"])
    assert command == ".venv/bin/python -m bench io --engine-env 'A=b c'"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0
    assert median([1.0, 3.0, 2.0, 4.0]) == 2.5


def test_order_violations_counts_calls_overtaking_their_key() -> None:
    in_order = [("a", 0, 0.0), ("b", 0, 0.1), ("a", 1, 0.2), ("b", 1, 0.3)]
    assert order_violations(in_order) == 0
    assert order_violations([("a", 1, 0.0), ("a", 0, 0.1), ("b", 0, 0.2)]) == 1


def test_slope_is_in_mb_per_minute() -> None:
    assert slope_mb_per_min([(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)]) == pytest.approx(2.0)
    assert slope_mb_per_min([(0.0, 50.0), (60.0, 50.0)]) == 0.0


def test_report_table_marks_missed_targets() -> None:
    report = Report()
    report.add("1 x", "ratio", "1.5", "<= 1.3", False)
    report.add("1 x", "info", "7")
    table = report.table()
    assert "| 1 x | ratio | 1.5 | <= 1.3 | **no** |" in table
    assert "| 1 x | info | 7 |  |  |" in table


def test_rate_between_ignores_ramp_up_and_tail() -> None:
    seen = Seen(ids={str(n).encode() for n in range(100)})
    seen.progress = [(0.0, 1), (5.0, 10), (6.0, 50), (7.0, 90), (20.0, 100)]
    assert seen.rate_between(0.1, 0.9) == pytest.approx(40.0)


def test_cpu_at_interpolates_between_samples(tmp_path: Path) -> None:
    child = Child("x", ["true"], {}, tmp_path)
    child.started_at = 100.0
    child.cpu_samples = [(101.0, 0.5), (102.0, 1.5)]
    assert child.cpu_at(100.5) == pytest.approx(0.25)
    assert child.cpu_at(101.5) == pytest.approx(1.0)
    assert child.cpu_at(105.0) == pytest.approx(1.5)
