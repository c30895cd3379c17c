"""`make test-fast` (pytest -m fast) runs with every service stopped, and leaves out the tests
that need one: the database (marker or fixture), Kafka, Redis or real processes (e2e)."""

import os
import subprocess
import sys

from django.conf import settings

CLOSED = {  # nothing listens on port 1
    "DATABASE_URL": "postgres://x:y@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
}


def test_the_fast_tier_runs_with_every_service_stopped() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "fast",
            "-p",
            "no:cacheprovider",
            "backbone/tests/run_probe.py",
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, **CLOSED},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Only test_needs_no_service runs; the six that need a service are not run at all.
    assert "1 passed, 6 deselected" in output, output
