"""The library as an outside project uses it: docs/library.md, step by step.

The wheel is built from a copy of this checkout (shop and all, so its package list is what is
tested), installed into a fresh virtualenv with its dependencies and nothing else, and a project
made by `django-admin startproject` gets the files docs/library.md prints: `greetings` emits
`GreetingSent` in a transaction, `listeners` keeps a read model of it. Against the real
PostgreSQL (a database of its own) and Kafka (a namespace of its own): `migrate`, `topics`, then
`relay` and `consume listeners` as subprocesses, and the event must be applied exactly once, a
redelivery of its record included. About a minute and a half, most of it pip.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings

from backbone.conf import backbone_settings
from backbone.provisioning import delete_namespace
from backbone.testing import Timeout, terminate, wait_for

pytestmark = pytest.mark.e2e

CHECKOUT = Path(__file__).resolve().parents[2]
LIBRARY_DOC = CHECKOUT / "docs" / "library.md"
# What a checkout holds that is no source: the copy the wheel is built from leaves it out.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".services",
    ".static",
    "__pycache__",
    "*.pyc",
    "build",
    "*.egg-info",
    "test-artifacts",
    "results",  # bench/results
)
LIBRARY_PACKAGES = {"backbone", "outbox"}
# A file of docs/library.md: a fenced python block whose first line names it.
DOC_FILE = re.compile(r"```python\n# (?P<path>\S+)(?P<append> \(append\))?\n(?P<body>.*?)```", re.DOTALL)


def test_an_outside_project_applies_an_event_once(tmp_path, postgres_service, kafka_service):
    wheel = build_wheel(tmp_path)
    assert_only_the_library_in(wheel)
    python = virtualenv_with(wheel, tmp_path / "venv")
    project = tmp_path / "project"
    project.mkdir()
    run(str(Path(python).with_name("django-admin")), "startproject", "mysite", ".", cwd=project)
    manage = [python, "manage.py"]
    run(*manage, "startapp", "greetings", cwd=project)
    run(*manage, "startapp", "listeners", cwd=project)
    write_documented_files(project)

    suffix = uuid.uuid4().hex[:8]
    namespace = f"outside-{suffix}."
    with ExitStack() as cleanup:
        env = cleanup.enter_context(project_environment(f"outside_{suffix}", namespace))
        cleanup.callback(delete_namespace, namespace)

        def manage_py(*args: str) -> str:
            return run(*manage, *args, cwd=project, env=env)

        manage_py("makemigrations", "greetings", "listeners")
        manage_py("migrate")
        assert f"{namespace}greetings" in manage_py("topics")

        relay = cleanup.enter_context(started([*manage, "relay"], project, env, tmp_path / "relay.log"))
        consumer = cleanup.enter_context(
            started([*manage, "consume", "listeners"], project, env, tmp_path / "consume.log")
        )
        greeting_id = manage_py("greet", "hello").strip().splitlines()[-1]

        database = env["DATABASE_NAME"]
        wait_while_running(
            lambda: read_model(database), relay, consumer, what="the greeting in the read model"
        )
        assert read_model(database) == [(uuid.UUID(greeting_id), "hello")]
        assert "listeners" in manage_py("status")

        # Kafka delivers at least once: the same record again changes nothing (the inbox).
        record = redeliver(f"{namespace}greetings")
        wait_while_running(
            lambda: committed_offset(f"{namespace}listeners", record) > record.offset() + 1,
            relay,
            consumer,
            what="the consumer past the redelivered record",
        )
        assert read_model(database) == [(uuid.UUID(greeting_id), "hello")]
        assert inbox_entries(database) == 1


def build_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "checkout"
    shutil.copytree(CHECKOUT, source, ignore=NOT_SOURCE, symlinks=True)
    dist = tmp_path / "dist"
    # As docs/library.md says, with pip's build isolation: setuptools as pyproject.toml asks.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), ".", cwd=source)
    (wheel,) = dist.glob("*.whl")
    return wheel


def assert_only_the_library_in(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == LIBRARY_PACKAGES, (
        f"the wheel's top-level packages are {sorted(top)}, not {sorted(LIBRARY_PACKAGES)}: "
        f"missing {sorted(LIBRARY_PACKAGES - top)}, of the shop {sorted(top - LIBRARY_PACKAGES)} "
        "(pyproject.toml, [tool.setuptools.packages.find])"
    )
    for part in ("/tests/", "/testing/"):
        assert not [name for name in names if part in name], f"the wheel holds {part} (the shop's tests)"
    for data in ("backbone/py.typed", "outbox/py.typed", "outbox/templates/outbox/story.html"):
        assert data in names, f"the wheel lacks {data} (pyproject.toml, [tool.setuptools.package-data])"
    migrations = {name.split("/")[0] for name in names if "/migrations/0001_" in name}
    assert migrations == LIBRARY_PACKAGES, f"the wheel lacks migrations: {sorted(migrations)}"


def virtualenv_with(wheel: Path, venv: Path) -> str:
    """A virtualenv of its own (no site-packages of this one): the wheel and what it depends on,
    at the versions the shop is tested with (constraints.txt), from pip's cache or PyPI."""
    # This pip installs into it (`pip --python`): ensurepip would take half a minute.
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=venv.parent)
    python = str(venv / "bin" / "python")
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile"]
    run(*install, str(wheel), "psycopg[binary]", "-c", str(CHECKOUT / "constraints.txt"), cwd=venv)
    return python


def write_documented_files(project: Path) -> None:
    found = list(DOC_FILE.finditer(LIBRARY_DOC.read_text()))
    assert found, f"no files in {LIBRARY_DOC}"
    for match in found:
        path = project / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if match["append"] else "w") as file:
            file.write(match["body"])
        # The page says: management/ and management/commands/ each need an empty __init__.py.
        for directory in path.relative_to(project).parents:
            if directory.parent != Path("."):  # below the app's own directory
                (project / directory / "__init__.py").touch()


@contextmanager
def project_environment(database: str, namespace: str) -> Iterator[dict[str, str]]:
    """The environment of the project's processes, on a database created for them and dropped
    afterwards; none of this process's (the shop's settings, its namespace) leaks into it."""
    shop_db = settings.DATABASES["default"]
    server = {
        "host": shop_db["HOST"],
        "port": str(shop_db["PORT"]),
        "user": shop_db["USER"],
        "password": shop_db["PASSWORD"],
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    try:
        yield {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "DATABASE_NAME": database,
            "DATABASE_HOST": server["host"],
            "DATABASE_PORT": server["port"],
            "DATABASE_USER": server["user"],
            "DATABASE_PASSWORD": server["password"],
            "KAFKA_BOOTSTRAP_SERVERS": backbone_settings.KAFKA_BOOTSTRAP_SERVERS,
            "KAFKA_NAMESPACE": namespace,
        }
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def run(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    if env is None:
        # pip and django-admin: this environment, without the shop's settings module.
        env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


@dataclass(frozen=True)
class Running:
    """A process of the project, its output in a file (shown when the test fails)."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return f"--- {' '.join(map(str, self.process.args[1:]))}\n{self.log.read_text()[-3000:]}"


@contextmanager
def started(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[Running]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield Running(process, log)
    finally:
        terminate(process, grace=10)  # SIGTERM, as an operator stops it: the batch finishes


def wait_while_running(condition, *processes: Running, what: str) -> None:
    """wait_for, failing at once with a process's output when one exits (a start-up error)."""

    def check():
        for running in processes:
            if running.process.poll() is not None:
                pytest.fail(f"exited with {running.process.returncode}:\n{running.output()}")
        return condition()

    try:
        wait_for(check, timeout=60, what=what)
    except Timeout:
        logs = "\n".join(running.output() for running in processes)
        pytest.fail(f"no {what} within 60 s\n{logs}")


def read_model(database: str) -> list[tuple[uuid.UUID, str]]:
    with _connect(database) as connection:
        return connection.execute("SELECT greeting_id, text FROM listeners_greetingseen").fetchall()


def inbox_entries(database: str) -> int:
    with _connect(database) as connection:
        return connection.execute("SELECT count(*) FROM inbox").fetchone()[0]


def _connect(database: str) -> psycopg.Connection:
    shop_db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname=database,
        host=shop_db["HOST"],
        port=shop_db["PORT"],
        user=shop_db["USER"],
        password=shop_db["PASSWORD"],
        autocommit=True,
    )


def _kafka() -> dict[str, str]:
    return {"bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS}


def redeliver(topic: str):
    """Read the topic's one record and produce it again, headers (its event id) and all."""
    reader = Consumer({**_kafka(), "group.id": f"{topic}.reader", "auto.offset.reset": "earliest"})
    try:
        reader.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = reader.poll(1.0)
            if message is not None and message.error() is None:
                break
        else:
            pytest.fail(f"no record on {topic}")
    finally:
        reader.close()
    producer = Producer(_kafka())
    producer.produce(
        topic, message.value(), message.key(), partition=message.partition(), headers=message.headers()
    )
    assert producer.flush(10) == 0
    return message


def committed_offset(group: str, record) -> int:
    reader = Consumer({**_kafka(), "group.id": group, "enable.auto.commit": False})
    try:
        (position,) = reader.committed([TopicPartition(record.topic(), record.partition())], timeout=10)
        return position.offset
    finally:
        reader.close()
