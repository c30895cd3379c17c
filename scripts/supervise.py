"""Run the Procfile's processes for `make run`, one log prefix each, and restart any that dies.

honcho, which ran them before, ends every process as soon as one exits, so a single crashed
consumer took the whole shop down. This keeps honcho's parts: its Procfile parser, its Process
(a command in a session of its own, its output forwarded line by line) and its Printer (the
`time name | line` prefix). Only the loop is new: a process that exits is logged with its exit
code and started again after a backoff (1 s, doubling up to 30 s, each shortened by up to half
at random so processes that died together do not return together; back to 1 s once a run lasted
a minute), while the others keep running. SIGINT (Ctrl-C) or SIGTERM stops every process: SIGTERM
to its process group, SIGKILL to whatever is left after a grace period.

    .venv/bin/python scripts/supervise.py [--procfile Procfile] [--grace SECONDS]
"""

import argparse
import contextlib
import datetime
import os
import queue
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from honcho.colour import get_colours
from honcho.environ import parse_procfile
from honcho.printer import Message, Printer
from honcho.process import Process

SYSTEM = "system"  # the prefix of the supervisor's own lines, as in honcho
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


@dataclass
class Backoff:
    """The delay before a process is started again: it doubles while the process keeps dying."""

    first: float = 1.0
    limit: float = 30.0
    healthy_after: float = 60.0  # a run this long resets the delay
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def after_run(self, seconds: float) -> float:
        if seconds >= self.healthy_after:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.limit)
        # Equal jitter, as backbone/backoff.py (this script imports nothing of the project): the
        # processes that died together with a service do not all come back in the same second.
        return round(delay * (1.0 - 0.5 * random.random()), 1)


@dataclass
class Child:
    """One Procfile entry and the state of its current run."""

    process: Process
    backoff: Backoff
    pid: int | None = None
    running: bool = False  # from the launch until its `stop` message
    started: float = 0.0
    restarts: int = 0
    restart_at: float | None = None  # monotonic time of a scheduled start


def signal_group(pid: int, signum: int) -> None:
    """Signal the process group a child leads (honcho starts each in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signum)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class Supervisor:
    def __init__(self, commands: dict[str, str], printer: Printer, grace: float) -> None:
        self.events: queue.Queue[Message] = queue.Queue()
        self.printer = printer
        self.printer.width = max(len(SYSTEM), *(len(name) for name in commands))
        self.grace = grace
        colours = get_colours()
        self.children = {
            name: Child(Process(command, name=name, colour=next(colours)), Backoff())
            for name, command in commands.items()
        }
        self.stop_signal: int | None = None

    def run(self) -> int:
        """Supervise until SIGINT or SIGTERM; return the shell's exit code for that signal."""
        for signum in SIGNAL_NAMES:
            signal.signal(signum, self._on_signal)
        for child in self.children.values():
            self._launch(child)
        while self.stop_signal is None:
            self._handle_events()
            self._start_due()
        return self._stop_all(self.stop_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_signal = signum

    def _launch(self, child: Child) -> None:
        child.running, child.pid, child.restart_at = True, None, None
        child.started = time.monotonic()
        # A thread per run: Process.run blocks, forwarding output until the command exits.
        threading.Thread(target=self._run, args=(child.process,), daemon=True).start()

    def _run(self, process: Process) -> None:
        try:
            process.run(self.events)
        except OSError as error:  # the shell itself could not be started: retried like an exit
            now = datetime.datetime.now()
            self.events.put(Message("line", f"cannot start: {error}", now, process.name, process.colour))
            self.events.put(Message("stop", {"returncode": 127}, now, process.name, process.colour))

    def _start_due(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None and child.restart_at <= now:
                child.restarts += 1
                self._say(f"{child.process.name} restarting (restart {child.restarts})")
                self._launch(child)

    def _handle_events(self, timeout: float = 0.1) -> None:
        try:
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        child = self.children[message.name]
        if message.type == "line":
            self.printer.write(message)
        elif message.type == "start":
            child.pid = message.data["pid"]
            self._say(f"{message.name} started (pid={child.pid})")
            if self.stop_signal is not None:  # it was launched just before the signal came
                signal_group(child.pid, signal.SIGTERM)
        elif message.type == "stop":
            self._on_exit(child, message.data["returncode"])

    def _on_exit(self, child: Child, returncode: int) -> None:
        child.running = False
        if child.pid is not None:
            signal_group(child.pid, signal.SIGTERM)  # what it started and left behind
        if self.stop_signal is not None:
            self._say(f"{child.process.name} stopped ({describe_exit(returncode)})")
            return
        delay = child.backoff.after_run(time.monotonic() - child.started)
        child.restart_at = time.monotonic() + delay
        self._say(f"{child.process.name} {describe_exit(returncode)}; restarting in {delay:g} s")

    def _stop_all(self, signum: int) -> int:
        self._say(f"{SIGNAL_NAMES[signum]} received: stopping every process")
        for child in self.children.values():
            child.restart_at = None
            if child.running and child.pid is not None:
                self._say(f"sending SIGTERM to {child.process.name} (pid {child.pid})")
                signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(child.running for child in self.children.values()):
            if time.monotonic() > deadline:
                self._kill_remaining()
                deadline = float("inf")
            self._handle_events()
        return 128 + signum

    def _kill_remaining(self) -> None:
        for child in self.children.values():
            if child.running and child.pid is not None:
                self._say(f"{child.process.name} still runs after {self.grace:g} s: sending SIGKILL")
                signal_group(child.pid, signal.SIGKILL)

    def _say(self, text: str) -> None:
        now = datetime.datetime.now()
        self.printer.write(Message(type="line", data=text, time=now, name=SYSTEM, colour=None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procfile", type=Path, default=Path("Procfile"))
    parser.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = parser.parse_args()
    try:
        commands = parse_procfile(args.procfile.read_text()).processes
    except OSError as error:
        parser.exit(2, f"supervise: cannot read {args.procfile}: {error.strerror}\n")
    if not commands:
        parser.exit(2, f"supervise: {args.procfile} names no process\n")
    return Supervisor(dict(commands), Printer(sys.stdout), args.grace).run()


if __name__ == "__main__":
    sys.exit(main())
