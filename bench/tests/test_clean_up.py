"""The bench removes what it created, however it ends: a drop that an autovacuum worker (or any
session it may not end) is in the way of, and a run killed with SIGKILL midway."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from backbone.kafka import admin_config
from bench import unfinished
from bench.environment import BASE_DIR, database_url, drop_database, recreate_database

pytestmark = pytest.mark.timeout(180)


def _exists(name: str) -> bool:
    with psycopg.connect(_libpq(database_url("postgres")), autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _superuser_url(name: str) -> str:
    """The `postgres` superuser of the cluster `make services` runs (trust on 127.0.0.1): a
    session the shop's role may not end, like an autovacuum worker's."""
    return re.sub(r"//[^@/]*@", "//postgres@", _libpq(database_url(name)))


@pytest.fixture
def bench_database():
    name = f"bench_test_{uuid.uuid4().hex[:8]}"
    yield name
    if _exists(name):
        drop_database(database_url(name))


def test_a_drop_waits_out_a_session_it_may_not_end_and_ends_its_own(bench_database):
    recreate_database(database_url(bench_database))
    own = psycopg.connect(_libpq(database_url(bench_database)))  # a leftover bench process's
    foreign = psycopg.connect(_superuser_url(bench_database), autocommit=True)
    assert foreign.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (True,)
    # The foreign session leaves after a moment, as an autovacuum worker finishes its table.
    threading.Timer(2.0, foreign.close).start()

    drop_database(database_url(bench_database))

    assert not _exists(bench_database)
    assert _broken(own)


def _broken(connection: psycopg.Connection) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_drop_names_who_is_in_the_way_when_they_stay(bench_database):
    recreate_database(database_url(bench_database))
    lingering = psycopg.connect(_superuser_url(bench_database), autocommit=True, application_name="lingering")
    with lingering, pytest.raises(RuntimeError, match=r"still in use by postgres \(lingering\)"):
        drop_database(database_url(bench_database), patience=1)


def test_a_run_killed_midway_is_cleaned_up_by_the_next(bench_database):
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--only", "latency", "--database", bench_database],
        cwd=BASE_DIR,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    relay_pid, namespace = _wait_for_relay(bench)
    bench.send_signal(signal.SIGKILL)
    bench.wait(timeout=10)
    note = unfinished.NOTES_DIR / f"{bench_database}.json"
    assert note.exists()
    assert _exists(bench_database)
    assert _topics(namespace)
    # The processes it started do not outlive it.
    _wait_until(lambda: not Path(f"/proc/{relay_pid}").exists(), "the relay to stop with the bench")

    unfinished.clean_up_after_killed_runs()

    assert not note.exists()
    assert not _exists(bench_database)
    assert _topics(namespace) == []


def _wait_for_relay(bench: subprocess.Popen[str]) -> tuple[int, str]:
    assert bench.stderr is not None
    namespace = None
    for line in bench.stderr:
        if match := re.search(r"Kafka namespace (\S+)\.$", line):
            namespace = match[1] + "."
        if match := re.search(r"started relay \(pid (\d+)\)", line):
            assert namespace is not None
            return int(match[1]), namespace
    raise AssertionError(f"the bench ended (code {bench.wait()}) before it started the relay")


def _topics(namespace: str) -> list[str]:
    topics = AdminClient(admin_config()).list_topics(timeout=10).topics
    return [name for name in topics if name.startswith(namespace)]


def _wait_until(condition, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
