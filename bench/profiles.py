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


# Leaf frames that mean "waiting", which py-spy's idle detection does not always catch (threads
# parked in a pool, a socket read, a select): left out with `active_only`.
WAITING = (
    "_worker (futures/thread.py)",
    "EpollSelector.select (",
    "PollSelector.select (",
    "_PollLikeSelector.select (",  # the metrics server thread (socketserver)
    "SocketBuffer._read_from_socket (",
    "Connection.wait (psycopg/",
    "Arbiter.wait_for_signals (",
    "Arbiter.sleep (",
    "Condition.wait (",
    "Event.wait (",
    "OutboxListener.wait (",
    "wait_for_signals (",
)


def summarize(path: Path, top: int = 15, *, active_only: bool = True) -> str:
    """The functions with the most samples on the stack (inclusive) and on top (self);
    with `active_only`, samples that only show a thread waiting are left out."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames or (active_only and frames[-1].startswith(WAITING)):
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return f"{path.name}: no samples"
    kind = "active samples (waits left out)" if active_only else "samples"
    lines = [f"{path.name}: {total} {kind}", "  self%   incl%  function"]
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
    parser.add_argument("--all", action="store_true", help="keep samples of threads that only wait")
    args = parser.parse_args()
    for path in args.paths:
        print(summarize(path, args.top, active_only=not args.all))


if __name__ == "__main__":
    main()
