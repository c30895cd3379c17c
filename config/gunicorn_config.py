"""gunicorn settings for the web process: Prometheus multiprocess mode (`-c config/gunicorn_config.py`).

Each worker keeps its metric values in files under PROMETHEUS_MULTIPROC_DIR, which `GET /metrics`
adds up. The directory is emptied when the server starts (files of an earlier run would be added
in) and a dead worker's live gauges are dropped. Without the variable, a fresh temporary
directory is used and removed at exit. Loaded as a file by gunicorn's master, before any worker
imports prometheus-client, which reads the variable at import.

Each held long-poll is an open socket: the soft limit on open files is raised to the hard one
here, in the master, so that its workers (which inherit it) can hold thousands of waiters.
"""

import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Any

_owned = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-web-")
_directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

# ASGI (config.asgi:application) in uvicorn workers: a long-poll is a coroutine, not a thread.
# The access log is the application's (backbone/access_log.py), not uvicorn's.
worker_class = "config.uvicorn_worker.WebWorker"
# How long an idle keep-alive connection stays open (uvicorn's timeout_keep_alive comes from it).
# gunicorn's default, 2 s, closes a connection while a client (or a load balancer, whose idle
# timeout is usually 60 s) is about to send its next request on it: that request meets a
# closed socket, a "connection reset" for a POST no client may retry. The server must outlast
# its clients' idle timeouts.
keepalive = 75


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_open_files_limit()


def on_starting(server: Any) -> None:
    """Start with no values: counters of a previous run must not be added to this one's."""
    shutil.rmtree(_directory, ignore_errors=True)
    _directory.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    # Imported here, after the variable is set: prometheus-client picks its storage at import.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _owned:
        shutil.rmtree(_directory, ignore_errors=True)
