"""The bench's own world: its database, its Kafka namespace and the processes it starts.

Nothing here touches the shop's database or topics: the bench creates `bench_shop` (or the
name given) from scratch, migrates it, provisions the topics under a `bench-<uuid8>.` prefix,
and removes both when it is done.
"""

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.harness import RESULTS_DIR

log = logging.getLogger("bench")

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://shop:shop@127.0.0.1:55432/shop"
DEFAULT_REDIS_URL = "redis://127.0.0.1:56379/0"
BENCH_REDIS_DATABASE = 13
# How long a drop of the bench database waits for sessions the bench cannot end.
DROP_PATIENCE = 60.0


def database_url(name: str) -> str:
    """The shop's DATABASE_URL (or the local default) with the database name replaced."""
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def redis_url(database: int = BENCH_REDIS_DATABASE) -> str:
    """The shop's REDIS_URL (or the local default) on a Redis database of the bench's, away
    from a running shop's; concurrent bench runs keep apart by their Celery queue, which
    settings name after the Kafka namespace."""
    parts = urlsplit(os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def recreate_database(url: str) -> None:
    """Drop (disconnecting whoever is left) and create the bench database."""
    name = _bench_database_name(url)
    drop_database(url)
    with psycopg.connect(_libpq(database_url("postgres")), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(url: str, *, patience: float = DROP_PATIENCE) -> None:
    """Drop the bench database, as the unprivileged role the shop runs as.

    `DROP DATABASE ... WITH (FORCE)` needs the right to signal every session in the database,
    and an autovacuum worker belongs to no role the shop's is a member of: the drop fails with
    "must be a member of the role whose process is being terminated or member of
    pg_signal_backend". So the bench ends its own role's sessions (a process of a run killed
    midway may still hold one), then drops without FORCE: PostgreSQL itself stops autovacuum
    workers in a database being dropped. Sessions of other roles are waited for, `patience`
    seconds at most.
    """
    name = _bench_database_name(url)
    deadline = time.monotonic() + patience
    with psycopg.connect(_libpq(database_url("postgres")), autocommit=True) as admin:
        while True:
            admin.execute(_END_OWN_SESSIONS, {"database": name})
            try:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                return
            except psycopg.errors.ObjectInUse:
                others = _other_sessions(admin, name)
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"cannot drop the bench database {name}: still in use by {others}"
                    ) from None
                log.info("bench database %s in use by %s; retrying", name, others)
                time.sleep(1)


# Sessions of the bench's own role need no privilege to be ended.
_END_OWN_SESSIONS = """
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = %(database)s AND usename = current_user AND pid <> pg_backend_pid()
"""


def _other_sessions(admin: psycopg.Connection, name: str) -> str:
    rows = admin.execute(
        "SELECT coalesce(usename, backend_type), coalesce(nullif(application_name, ''), backend_type) "
        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        [name],
    ).fetchall()
    return ", ".join(f"{user} ({application})" for user, application in rows) or "nobody any more"


def _bench_database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"bench_[a-z0-9_]+", name):
        raise SystemExit(f"refusing to drop database {name!r}: bench databases are named bench_*")
    return name


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A plain psycopg connection, for the bench's own bulk work outside Django's ORM."""
    return psycopg.connect(_libpq(url), autocommit=autocommit)


def new_namespace() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}."


def delete_namespace(namespace: str) -> list[str]:
    """Delete the namespace's topics and consumer groups (the end-to-end run's sub-namespaces
    included); returns what could not be deleted."""
    from backbone.provisioning import delete_namespace as delete

    return delete(namespace, timeout=30)


# --- Processes ----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    profiler: subprocess.Popen[bytes] | None = None
    profile_path: Path | None = None

    def output(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


@dataclass
class Processes:
    """Subprocesses of the shop (relay, consumers, web, worker), each in its own process group
    so stopping one stops its children (gunicorn and Celery workers) too."""

    env: dict[str, str]
    logs_dir: Path = field(default_factory=lambda: RESULTS_DIR / "logs")
    running: list[Process] = field(default_factory=list)
    # Record a py-spy profile (collapsed stacks) of every process started: "cpu" or "wall".
    profile: str | None = None
    profiles: list[Path] = field(default_factory=list)

    def start(self, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> Process:
        """Start `command` (cwd: the project) with the bench's environment; output goes to a log."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        log_file = log_path.open("wb")
        popen = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env={**self.env, **(extra_env or {})},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_stop_when_the_bench_dies,
        )
        process = Process(name=name, popen=popen, log_path=log_path, log_file=log_file)
        self.running.append(process)
        log.info("started %s (pid %d): %s", name, popen.pid, " ".join(command))
        if self.profile:
            self._attach_profiler(process)
        return process

    def _attach_profiler(self, process: Process) -> None:
        py_spy = Path(sys.executable).with_name("py-spy")
        if not py_spy.exists():
            log.warning(
                "--profile: py-spy is not installed in the virtualenv (pip install -r requirements-dev.txt)"
            )
            return
        process.profile_path = self.logs_dir / f"{process.name}.pyspy.txt"
        # --idle: wall-clock profiles, so time spent waiting on PostgreSQL or Kafka shows too.
        idle = ["--idle"] if self.profile == "wall" else []
        options = ["--subprocesses", *idle, "--rate", "100", "--format", "raw"]
        process.profiler = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(process.popen.pid),
                *options,
                "-o",
                str(process.profile_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def manage(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> Process:
        """Start `python manage.py <args>`."""
        return self.start(name, [sys.executable, "manage.py", *args], extra_env=extra_env)

    def check_alive(self) -> None:
        for process in self.running:
            code = process.popen.poll()
            if code is not None:
                raise RuntimeError(f"{process.name} exited with code {code}:\n{process.tail()}")

    def wait_for_output(self, process: Process, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(process.output()):
                return
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"{process.name} did not print /{pattern}/ in {timeout:.0f}s:\n{process.tail()}")

    def stop(self, process: Process, timeout: float = 15) -> None:
        if process.popen.poll() is None:
            _signal_group(process.popen.pid, signal.SIGTERM)
            try:
                process.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs; killing it", process.name, timeout)
                _signal_group(process.popen.pid, signal.SIGKILL)
                process.popen.wait(timeout=10)
        # Children left behind in the group (a gunicorn worker, a Celery pool process) go too.
        _signal_group(process.popen.pid, signal.SIGKILL)
        process.log_file.close()
        if process.profiler is not None:
            # py-spy writes its file once the process it samples has gone.
            try:
                process.profiler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process.profiler.pid, signal.SIGINT)
                process.profiler.wait(timeout=10)
            if process.profile_path is not None and process.profile_path.exists():
                self.profiles.append(process.profile_path)
        if process in self.running:
            self.running.remove(process)

    def cpu_snapshot(self) -> dict[str, float]:
        """CPU seconds so far of each running process (with its children)."""
        return {process.name: cpu_seconds(process.popen.pid) for process in self.running}

    def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            self.stop(process)


def cpu_seconds(process_group: int) -> float:
    """User + system CPU of every live process in a process group (a service and its children)."""
    return sum(cpu for pgrp, cpu in _proc_cpu(lambda stat, cmdline: True) if pgrp == process_group)


def postgres_cpu_seconds(database: str) -> float:
    """CPU of the PostgreSQL backends serving `database` (their title names it). Only titles
    PostgreSQL set count: the bench's own command line names the database too (--database)."""
    marker = f" {database} "
    return sum(cpu for _pgrp, cpu in _proc_cpu(lambda stat, cmdline: _serves(cmdline, marker)))


def _serves(cmdline: str, marker: str) -> bool:
    # A backend's title: "postgres: <user> <database> <client> <state>" (see _proc_cpu's padding).
    return cmdline.startswith(" postgres: ") and marker in cmdline


def kafka_broker_cpu_seconds() -> float:
    """CPU of the local Kafka broker `make services` started (shared with whoever else uses
    it); other brokers on the machine, e.g. disposable ones of tests, are not counted."""
    properties = f" {BASE_DIR / '.services' / 'kafka' / 'server.properties'} "
    return sum(cpu for _pgrp, cpu in _proc_cpu(lambda stat, cmdline: properties in cmdline))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / ticks, sum(values) / ticks


def _proc_cpu(keep: Callable[[list[str], str], bool]) -> list[tuple[int, float]]:
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        # Fields after the parenthesised name: state ppid pgrp ... utime(14) stime(15).
        fields = stat[stat.rindex(")") + 2 :].split()
        if keep(fields, f" {cmdline} "):
            found.append((int(fields[2]), (int(fields[11]) + int(fields[12])) / ticks))
    return found


def _stop_when_the_bench_dies() -> None:
    """Runs in the child before it executes its command: a bench killed with SIGKILL cannot stop
    its processes, so the kernel sends each a SIGTERM when the bench is gone (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)
