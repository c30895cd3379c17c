"""Runs that ended without cleaning up: a bench killed midway (SIGKILL, a power cut, a closed
terminal) leaves its database and its Kafka namespace behind.

Each run writes down what it created in `bench/results/unfinished/<database>.json` before it
creates it, and removes the note once it has removed both. The next run, whatever its
database, finds the notes of runs whose process is gone and removes what they list.
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.environment import database_url, delete_namespace, drop_database
from bench.harness import RESULTS_DIR

log = logging.getLogger("bench")

NOTES_DIR = RESULTS_DIR / "unfinished"


@dataclass(frozen=True)
class RunNote:
    database: str
    namespace: str
    pid: int

    @property
    def path(self) -> Path:
        return NOTES_DIR / f"{self.database}.json"


def remember(database: str, namespace: str) -> RunNote:
    note = RunNote(database=database, namespace=namespace, pid=os.getpid())
    NOTES_DIR.mkdir(parents=True, exist_ok=True)
    note.path.write_text(json.dumps(asdict(note)))
    return note


def forget(note: RunNote) -> None:
    note.path.unlink(missing_ok=True)


def clean_up_after_killed_runs() -> None:
    """Remove the database and namespace of every earlier run that is no longer running."""
    for path in sorted(NOTES_DIR.glob("*.json")):
        try:
            note = RunNote(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as error:
            log.warning("ignoring the unreadable note %s: %s", path, error)
            continue
        if note.pid != os.getpid() and _running(note.pid):
            continue  # another bench run, alive: not ours to touch
        log.info(
            "an earlier run (pid %d) ended without cleaning up: removing database %s and namespace %s",
            note.pid,
            note.database,
            note.namespace,
        )
        drop_database(database_url(note.database))
        left = delete_namespace(note.namespace)
        if left:
            log.warning("could not remove %s; they stay", ", ".join(left))
        forget(note)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
    return b"bench" in cmdline  # a recycled pid of something else is not a bench run
