"""What the bench's CPU meters count, read from /proc about real processes."""

import subprocess
import sys
import time

import pytest

from bench.environment import postgres_cpu_seconds

# A process that burns CPU and whose command line names a database, as `python -m bench
# --database bench_x` does: it is not one of PostgreSQL's backends.
BUSY = "import time\nend = time.time() + 2\nwhile time.time() < end: pass\n"


def test_postgres_cpu_counts_backends_not_other_processes_naming_the_database():
    database = "bench_meter_probe"
    before = postgres_cpu_seconds(database)
    busy = subprocess.Popen([sys.executable, "-c", BUSY, "--database", database])
    try:
        time.sleep(1.0)
        assert postgres_cpu_seconds(database) - before < 0.1
    finally:
        busy.wait(timeout=10)


@pytest.mark.django_db
def test_postgres_cpu_counts_the_backends_of_the_database():
    from django.db import connection

    before = postgres_cpu_seconds(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM generate_series(1, 5000000)")
    assert postgres_cpu_seconds(connection.settings_dict["NAME"]) - before > 0.1
