"""The shop's real processes in a test: started as subprocesses, logged, killed and restarted.

`ShopProcesses` starts `manage.py relay`, `manage.py consume <context>`, a Celery worker and a
gunicorn web server as subprocesses (each logging to its own file, shown when a test fails),
and can SIGKILL and restart any of them. `LoggedProcess` is one subprocess whose log a test
reads as it runs.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.conf import settings


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database a Django connection uses (the test database in tests)."""
    user = quote(settings_dict["USER"] or "", safe="")
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


# Ports for the servers a test starts, below Linux's ephemeral range (32768-60999 by default):
# a port the kernel hands out for listening on port 0 is also one it may give any client
# socket as its local port (a Kafka or PostgreSQL connection), before the test's server binds
# it. Each pytest-xdist worker draws from a block of its own, so two workers never race either.
_PORT_BLOCK = 3000
_FIRST_PORT = 20000


# Ports this test process has handed out. A probe only proves a port free *now*: a test that
# asks for six ports before it starts six servers could otherwise get one port twice, and
# its second server then fails to bind (seen in CI as consumers exiting with EADDRINUSE).
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on and not handed out before, for a server a test starts."""
    number = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    worker = int(number) if number.isdigit() else 0
    first = _FIRST_PORT + (worker % 4) * _PORT_BLOCK
    unused = [port for port in range(first, first + _PORT_BLOCK) if port not in _handed_out]
    if len(unused) < _PORT_BLOCK // 2:  # a long run: forget the oldest servers' ports
        _handed_out.clear()
        unused = list(range(first, first + _PORT_BLOCK))
    for port in random.sample(unused, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: another server of this run, or of another program
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port between {first} and {first + _PORT_BLOCK}")


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ShopProcesses:
    """The shop's processes for one test module, sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def add(self, name: str, argv: list[str]) -> None:
        self.processes[name] = ManagedProcess(name=name, argv=argv, log_path=self.log_dir / f"{name}.log")

    def start(self, *names: str) -> None:
        for name in names or tuple(self.processes):
            managed = self.processes[name]
            if managed.running:
                continue
            managed.starts += 1
            log = managed.log_path.open("ab")
            log.write(f"\n===== start #{managed.starts}: {' '.join(managed.argv)}\n".encode())
            log.flush()
            managed.process = subprocess.Popen(
                managed.argv,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach its children too
            )
            log.close()

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no offset commit, like a machine that loses power."""
        managed = self.processes[name]
        if managed.process is not None and managed.running:
            os.killpg(managed.process.pid, signal.SIGKILL)
            managed.process.wait(timeout=30)

    def stop(self, *names: str, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL for whatever has not exited in time."""
        chosen = [self.processes[name] for name in (names or tuple(self.processes))]
        for managed in chosen:
            if managed.process is not None and managed.running:
                os.killpg(managed.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for managed in chosen:
            if managed.process is None:
                continue
            try:
                managed.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(managed.process.pid, signal.SIGKILL)
                managed.process.wait(timeout=10)

    def assert_running(self) -> None:
        dead = [managed for managed in self.processes.values() if not managed.running]
        if dead:
            details = "\n".join(f"{m.name} exited with {m.process and m.process.returncode}" for m in dead)
            raise AssertionError(f"processes died:\n{details}\n{self.logs(*(m.name for m in dead))}")

    def logs(self, *names: str, tail: int = 60) -> str:
        parts = []
        for name in names or tuple(self.processes):
            path = self.processes[name].log_path
            lines = path.read_text(errors="replace").splitlines()[-tail:] if path.exists() else []
            parts.append(f"----- {name} (last {len(lines)} lines of {path})\n" + "\n".join(lines))
        return "\n".join(parts)


class LoggedProcess:
    """One subprocess whose stderr is collected as it runs, for tests that read its log lines."""

    def __init__(self, argv: list[str], *, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        terminate(self.process, grace=30)
        self._reader.join(timeout=10)


def terminate(process: "subprocess.Popen[Any]", *, grace: float = 20.0) -> int:
    """SIGTERM, then SIGKILL if the process is still there after `grace` seconds; its exit
    status. The one way a test ends a subprocess it started (a process group of its own is
    ShopProcesses.stop's)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
