"""Read py-spy's collapsed stacks (`--format raw`) and name where a process spends its time.

python -m bench.profiles bench/results/logs/relay.pyspy.txt
"""

import argparse
import re
from collections import Counter
from pathlib import Path

# A frame reads "function (path/to/file.py:123)"; the line number is dropped so a function's
# samples add up whatever line they were on.
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    short = "/".join(path.split("/site-packages/")[-1].split("/")[-2:])
    return f"{match['function']} ({short})"


def summarize(path: Path, top: int = 15) -> str:
    """The functions with the most samples on the stack (inclusive) and on top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples", "  self%   incl%  function"]
    for name, count in own.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}  {100 * inclusive[name] / total:6.1f}  {name}")
    lines.append("  -- most inclusive --")
    for name, count in inclusive.most_common(top):
        lines.append(f"  {100 * own[name] / total:5.1f}  {100 * count / total:6.1f}  {name}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    for path in args.paths:
        print(summarize(path, args.top))


if __name__ == "__main__":
    main()
