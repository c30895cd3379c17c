"""Which code commits PostgreSQL transactions, per process: the profile behind commits per order.

PostgreSQL counts commits per database (`pg_stat_database.xact_commit`), not per session, so
each process counts its own: `install()` wraps psycopg so that every commit is written, as one
line naming the project function that made it, to `<dir>/<process>.<pid>.log`. A commit is
a statement run in autocommit mode outside a transaction (an implicit transaction: a lone
SELECT counts as much as an INSERT), or a COMMIT that ends a transaction (Django's atomic,
psycopg's `transaction()`). The shop's processes install it through `sitecustomize` (the
`commit_hook` directory on PYTHONPATH, with COMMIT_LOG_DIR set); `read_counts()` sums the
logs, and a test checks the sum against PostgreSQL's own count.
"""

import functools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

_ROOT = str(Path(__file__).resolve().parents[2]) + os.sep
_SKIPPED = (os.sep + ".venv" + os.sep, os.sep + "site-packages" + os.sep, __file__)
_lock = threading.Lock()
_state: dict[str, Any] = {"dir": None, "files": {}, "patched": False, "listeners": []}

IDLE = pq.TransactionStatus.IDLE
INTRANS = pq.TransactionStatus.INTRANS


def process_name(argv: list[str]) -> str:
    """relay, consume-<context>, worker, beat, web, pytest, or the program's name."""
    words = [Path(word).name for word in argv]
    if "manage.py" in words:
        rest = words[words.index("manage.py") + 1 :]
        if rest[:1] == ["consume"] and len(rest) > 1:
            return f"consume-{rest[1]}"
        return rest[0] if rest else "manage.py"
    if any("gunicorn" in part for part in argv):
        return "web"
    if any("pytest" in part for part in argv):
        return "pytest"
    for name in ("beat", "worker"):  # celery's subcommand
        if name in argv:
            return name
    return words[0] if words else "python"


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_ROOT) and not any(part in filename for part in _SKIPPED):
            return f"{filename[len(_ROOT) :]}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "(outside the project)"


def _record(label: str) -> None:
    for listener in _state["listeners"]:
        listener.append(label)
    directory = _state["dir"]
    if directory is None:
        return
    pid = os.getpid()
    with _lock:
        handle = _state["files"].get(pid)
        if handle is None:
            name = process_name(sys.argv)
            handle = open(Path(directory) / f"{name}.{pid}.log", "a", buffering=1)  # noqa: SIM115
            _state["files"][pid] = handle
        handle.write(label + "\n")


def _status(connection: Any) -> Any:
    try:
        return connection.pgconn.transaction_status
    except Exception:  # a closed connection
        return None


def _wrap_statement(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        connection = self.connection
        # An empty query (psycopg_pool's connection check) runs no transaction.
        empty = bool(args) and isinstance(args[0], (str, bytes)) and not args[0]
        implicit = (
            not empty
            and connection.autocommit
            and _status(connection) == IDLE
            and getattr(connection, "_pipeline", None) is None
        )
        label = _caller() if implicit else ""
        result = method(self, *args, **kwargs)
        if implicit:
            _record(label)
        return result

    return wrapper


def _wrap_ending(method: Any, connection_of: Any) -> Any:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        connection = connection_of(self)
        before = _status(connection)
        label = _caller() if before == INTRANS else ""
        result = method(self, *args, **kwargs)
        if before == INTRANS and _status(connection) == IDLE and not (args and args[0] is not None):
            _record(label)
        return result

    return wrapper


def install(directory: str | None = None) -> None:
    """Count this process's commits (into `directory`, if given); idempotent."""
    if directory is not None:
        _state["dir"] = directory
    if _state["patched"]:
        return
    _state["patched"] = True
    for name in ("execute", "executemany"):
        setattr(psycopg.Cursor, name, _wrap_statement(getattr(psycopg.Cursor, name)))
    psycopg.Connection.commit = _wrap_ending(psycopg.Connection.commit, lambda c: c)  # type: ignore[method-assign]
    psycopg.Transaction.__exit__ = _wrap_ending(  # type: ignore[method-assign]
        psycopg.Transaction.__exit__, lambda t: t.connection
    )


@contextmanager
def counting() -> Iterator[list[str]]:
    """The commits of this process inside the block, one label each (the function that made it)."""
    install()
    labels: list[str] = []
    _state["listeners"].append(labels)
    try:
        yield labels
    finally:
        _state["listeners"].remove(labels)


def read_counts(directory: Path) -> Counter[tuple[str, str]]:
    """(process, function) -> commits, summed over the processes' logs so far."""
    counts: Counter[tuple[str, str]] = Counter()
    for path in directory.glob("*.log"):
        process = path.name.rsplit(".", 2)[0]
        for line in path.read_text().splitlines():
            counts[(process, line)] += 1
    return counts


def server_commits(sessions: Sequence[Any], action: Any, *, monitor: Any) -> int:
    """Commits PostgreSQL counted for `action()` on `sessions` (psycopg connections), as
    `pg_stat_database` reports them: a session flushes its counts at once when asked
    (`pg_stat_force_next_flush`), so no 10 s wait. Counted from `monitor`, another session of
    the same database; this function's own flush statements are not in the result."""

    def flush() -> None:
        for session in sessions:
            session.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.2)

    def counted() -> int:
        monitor.execute("SELECT pg_stat_clear_snapshot()")
        row = monitor.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0])

    flush()
    before = counted()
    action()
    flush()
    return counted() - before - len(sessions)
