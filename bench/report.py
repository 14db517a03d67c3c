"""Figures, printed as they are measured and as one table at the end (README-ready)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    scenario: str
    metric: str
    value: str
    target: str = ""
    # None: informative only, no target to meet.
    met: bool | None = None


class Report:
    def __init__(self) -> None:
        self.figures: list[Figure] = []

    def add(
        self,
        scenario: str,
        metric: str,
        value: str,
        target: str = "",
        met: bool | None = None,
    ) -> None:
        figure = Figure(scenario, metric, value, target, met)
        self.figures.append(figure)
        verdict = "" if met is None else ("  [met]" if met else "  [NOT met]")
        print(
            f"  {scenario} | {metric}: {value}{f'  (target {target})' if target else ''}{verdict}",
            flush=True,
        )

    def table(self) -> str:
        lines = [
            "| scenario | figure | value | target | met |",
            "|---|---|---|---|---|",
        ]
        for f in self.figures:
            met = "" if f.met is None else ("yes" if f.met else "**no**")
            lines.append(f"| {f.scenario} | {f.metric} | {f.value} | {f.target} | {met} |")
        return "\n".join(lines)


def say(message: str) -> None:
    print(message, file=sys.stdout, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
