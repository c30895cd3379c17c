"""Two test runs at once: each has its own test database and Kafka namespace, removed at the end.

Two pytest sessions run backbone/tests/run_probe.py at the same time, without TEST_DATABASE_NAME
(as two `make test` in two checkouts would); each waits for the other while its test database is
in use, so a shared name would make one of them drop or fail to create the other's database.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from django.conf import settings

from backbone.kafka import admin_config
from backbone.testing import wait_for

PROBE = "backbone/tests/run_probe.py::test_records_its_database_and_namespace_while_its_peers_run"


def _start_session(probe_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUN_PROBE_DIR": str(probe_dir), "RUN_PROBE_PEERS": "2"}
    env.pop("TEST_DATABASE_NAME", None)  # the default, as in a fresh checkout
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", PROBE],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _databases() -> set[str]:
    db = settings.DATABASES["default"]  # the server's own database, not the test database
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"]
    ) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _kafka_names(prefix: str) -> list[str]:
    admin = AdminClient(admin_config())
    topics = list(admin.list_topics(timeout=10).topics)
    groups = [listing.group_id for listing in admin.list_consumer_groups().result(10).valid]
    return [name for name in topics + groups if name.startswith(prefix)]


@pytest.mark.usefixtures("postgres_service", "kafka_service")
def test_two_runs_at_once_use_their_own_database_and_namespace_and_remove_them(tmp_path: Path) -> None:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    sessions = [_start_session(probe_dir, tmp_path / f"session-{n}.log") for n in range(2)]
    try:
        for n, session in enumerate(sessions):
            assert session.wait(timeout=120) == 0, (tmp_path / f"session-{n}.log").read_text(errors="replace")
    finally:
        for session in sessions:
            if session.poll() is None:
                session.send_signal(signal.SIGINT)  # pytest still tears down: drops its database
                session.wait(timeout=60)

    records = [json.loads(path.read_text()) for path in probe_dir.glob("*.json")]
    databases = {record["database"] for record in records}
    namespaces = {record["namespace"] for record in records}
    assert len(databases) == 2
    assert len(namespaces) == 2
    assert all(name.startswith("test_shop_") for name in databases)
    assert not databases & _databases(), "a session left its test database behind"
    for namespace in namespaces:
        # The broker deletes topics asynchronously: they may stay listed for a moment.
        wait_for(lambda ns=namespace: not _kafka_names(ns), timeout=20, what=f"{namespace}* to be deleted")
