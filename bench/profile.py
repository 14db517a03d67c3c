"""Summarise py-spy collapsed stacks: `python -m bench.profile FILE [--top N] [--match TEXT]`.

Prints the functions with the most samples on the stack (inclusive) and at the top of the
stack (self), as a share of all samples, so the hot path reads as text in notes and reviews.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE_NUMBER = re.compile(r":\d+\)$")


def summarise(path: Path, top: int, match: str | None) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        # "function (file:line)" -> "function (file)": lines of one function add up.
        frames = [_LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples in {path.name}", "", "inclusive (on the stack):"]
    for frame, count in inclusive.most_common():
        if match and match not in frame:
            continue
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
        if len(lines) > top + 3:
            break
    lines += ["", "self (top of the stack):"]
    for frame, count in own.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default=None, help="only inclusive frames containing TEXT")
    args = parser.parse_args()
    print(summarise(args.file, args.top, args.match))


if __name__ == "__main__":
    main()
