"""`make run`'s supervisor (scripts/supervise.py) restarts a process that dies.

It runs a Procfile of its own: one process that exits with code 3 after a moment, one that keeps
running. The crashed one must come back with a log line naming it and its exit code, the other
must run on untouched, and SIGTERM must stop both, leaving no process behind.
"""

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from backbone.testing import terminate

SCRIPT = Path(settings.BASE_DIR) / "scripts" / "supervise.py"
SUPERVISOR = [sys.executable, str(SCRIPT)]
PROCFILE = """\
# a tiny shop: one process that crashes, one that runs
crasher: sleep 0.3; echo crashing; exit 3
steady: echo steady up; exec sleep 600
"""


class Output:
    """The supervisor's output, read line by line in a thread so waits can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if match := re.search(pattern, line):
                    self.lines.remove(line)  # so the next wait finds the next one
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; still unread: {self.lines}")
            try:
                self.lines.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                continue


def group_alive(pid: int) -> bool:
    """Whether any process is left in the group (and session) the child led."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    procfile = tmp_path / "Procfile"
    procfile.write_text(PROCFILE)
    process = subprocess.Popen(
        [*SUPERVISOR, "--procfile", str(procfile), "--grace", "5"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield process, Output(process)
    finally:
        terminate(process, grace=10)  # the test failed half-way: stop it and its children


def test_a_crashed_process_is_restarted_and_sigterm_stops_all(supervisor) -> None:
    process, output = supervisor
    steady = int(output.wait_for(r"\| steady started \(pid=(\d+)\)").group(1))
    output.wait_for(r"^\d\d:\d\d:\d\d steady +\| steady up$")  # its own prefix, as with honcho
    first = int(output.wait_for(r"\| crasher started \(pid=(\d+)\)").group(1))
    exited = r"\| crasher exited with code 3; restarting in ([\d.]+) s$"
    first_delay = float(output.wait_for(exited).group(1))
    assert 0.5 <= first_delay <= 1.0, "1 s, less up to half by jitter"
    output.wait_for(r"\| crasher restarting \(restart 1\)$", timeout=5)
    second = int(output.wait_for(r"\| crasher started \(pid=(\d+)\)").group(1))
    second_delay = float(output.wait_for(exited).group(1))
    assert 1.0 <= second_delay <= 2.0, "the backoff doubles"
    assert second != first
    assert process.poll() is None, "the supervisor must outlive a crashed process"
    assert group_alive(steady), "the other process must keep running"
    assert not any("steady" in line and "exited" in line for line in output.lines)

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 128 + signal.SIGTERM
    output.wait_for(r"\| SIGTERM received: stopping every process$")
    output.wait_for(r"\| steady stopped \(was killed by SIGTERM\)$")
    for pid in (steady, first, second):
        assert not group_alive(pid), f"process group {pid} outlived the supervisor"


def _supervise_module():
    spec = importlib.util.spec_from_file_location("supervise", SCRIPT)
    supervise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(supervise)
    return supervise


def test_the_backoff_doubles_up_to_its_limit_and_resets_after_a_healthy_run() -> None:
    backoff = _supervise_module().Backoff()
    nominal = [1, 2, 4, 8, 16, 30, 30]
    delays = [backoff.after_run(0.5) for _ in nominal]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, nominal, strict=True)), delays
    assert 0.5 <= backoff.after_run(60) <= 1, "a run of a minute counts as healthy"
    assert 1 <= backoff.after_run(0.5) <= 2


def test_processes_that_die_together_are_restarted_apart() -> None:
    supervise = _supervise_module()
    delays = {supervise.Backoff().after_run(0.5) for _ in range(20)}
    assert len(delays) > 1, "every process waited exactly as long: no jitter"
