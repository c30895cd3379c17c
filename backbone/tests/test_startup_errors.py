"""A missing prerequisite or a stopped service gives one actionable line, never a traceback."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from backbone.testing import free_port

ROOT = Path(settings.BASE_DIR)


# The processes of these tests pick their settings as a deployment does, not pytest's.
DEPLOYED_SETTINGS = "config.settings"


def _run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": DEPLOYED_SETTINGS, **env}
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]


def test_missing_jdk_is_named_in_one_line(tmp_path: Path) -> None:
    result = _run(
        ["scripts/services.sh", "up", "kafka"],
        SHOP_NO_INSTALL="1",
        JAVA_HOME="/nonexistent-jdk",
        SHOP_SERVICES_DIR=str(tmp_path),
        SHOP_KAFKA_PORT=str(free_port()),
        SHOP_KAFKA_CONTROLLER_PORT=str(free_port()),
        KAFKA_BOOTSTRAP_SERVERS="",
    )
    _assert_one_line_error(result, "Java 17", "openjdk-17")


def test_stopped_kafka_is_named_in_one_line() -> None:
    closed = f"127.0.0.1:{free_port()}"
    result = _run([sys.executable, "manage.py", "topics"], KAFKA_BOOTSTRAP_SERVERS=closed)
    _assert_one_line_error(result, "Kafka is not reachable", closed, "make services")


def test_stopped_postgres_is_named_in_one_line() -> None:
    """A test run that selects a database test checks the services before the first test."""
    url = f"postgres://shop:shop@127.0.0.1:{free_port()}/shop"
    probe = "backbone/tests/run_probe.py::test_uses_the_database"
    result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", probe], DATABASE_URL=url)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if "PostgreSQL is not reachable" in line]) == 1, output


def test_production_refuses_the_development_secret_key() -> None:
    result = _run([sys.executable, "manage.py", "check"], SHOP_ENV="production", SECRET_KEY="")
    _assert_one_line_error(result, "SECRET_KEY")


def test_production_mode_passes_the_deployment_checks() -> None:
    result = _run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        SHOP_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="shop.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_bad_setting_in_the_environment_is_named_in_one_line() -> None:
    """The relay reads RELAY_BATCH_SIZE for its --batch-size default, before any check runs."""
    result = _run([sys.executable, "manage.py", "relay", "--once"], RELAY_BATCH_SIZE="abc")
    _assert_one_line_error(
        result, 'configuration error: BACKBONE["RELAY_BATCH_SIZE"] must be a positive integer'
    )


def test_the_system_check_names_every_bad_setting_of_the_environment() -> None:
    result = _run([sys.executable, "manage.py", "check"], RELAY_BATCH_SIZE="abc", STATUS_MAX_LAG="many")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert (
        "(backbone.E010) BACKBONE[\"RELAY_BATCH_SIZE\"] must be a positive integer, got 'abc'"
        in result.stderr
    )
    assert (
        "(backbone.E010) BACKBONE[\"STATUS_MAX_LAG\"] must be an integer, 0 or more, got 'many'"
        in result.stderr
    )
