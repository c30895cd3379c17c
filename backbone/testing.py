"""Helpers for end-to-end tests that run the shop's real processes against the test database.

`ShopProcesses` starts `manage.py relay`, `manage.py consume <context>`, a Celery worker and a
gunicorn web server as subprocesses (each logging to its own file, shown when a test fails),
and can SIGKILL and restart any of them. `KafkaTail` reads back what reached the broker, and
`wait_for` polls a condition up to a deadline instead of sleeping.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .contracts import Event
from .correlation import correlation_scope
from .envelope import Envelope, format_time
from .kafka import client_config, group_id, logical_topic, physical_topic
from .topics import TOPICS

T = TypeVar("T")


class Timeout(AssertionError):
    """A condition did not come true before its deadline."""


def wait_for(
    condition: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; raise Timeout at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database a Django connection uses (the test database in tests)."""
    user = quote(settings_dict["USER"] or "", safe="")
    password = quote(settings_dict["PASSWORD"] or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = settings_dict["HOST"] or "127.0.0.1", settings_dict["PORT"] or 5432
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ShopProcesses:
    """The shop's processes for one test module, sharing one environment."""

    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def add(self, name: str, argv: list[str]) -> None:
        self.processes[name] = ManagedProcess(name=name, argv=argv, log_path=self.log_dir / f"{name}.log")

    def start(self, *names: str) -> None:
        for name in names or tuple(self.processes):
            managed = self.processes[name]
            if managed.running:
                continue
            managed.starts += 1
            log = managed.log_path.open("ab")
            log.write(f"\n===== start #{managed.starts}: {' '.join(managed.argv)}\n".encode())
            log.flush()
            managed.process = subprocess.Popen(
                managed.argv,
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach its children too
            )
            log.close()

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no offset commit, like a machine that loses power."""
        managed = self.processes[name]
        if managed.process is not None and managed.running:
            os.killpg(managed.process.pid, signal.SIGKILL)
            managed.process.wait(timeout=30)

    def stop(self, *names: str, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL for whatever has not exited in time."""
        chosen = [self.processes[name] for name in (names or tuple(self.processes))]
        for managed in chosen:
            if managed.process is not None and managed.running:
                os.killpg(managed.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for managed in chosen:
            if managed.process is None:
                continue
            try:
                managed.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(managed.process.pid, signal.SIGKILL)
                managed.process.wait(timeout=10)

    def assert_running(self) -> None:
        dead = [managed for managed in self.processes.values() if not managed.running]
        if dead:
            details = "\n".join(f"{m.name} exited with {m.process and m.process.returncode}" for m in dead)
            raise AssertionError(f"processes died:\n{details}\n{self.logs(*(m.name for m in dead))}")

    def logs(self, *names: str, tail: int = 60) -> str:
        parts = []
        for name in names or tuple(self.processes):
            path = self.processes[name].log_path
            lines = path.read_text(errors="replace").splitlines()[-tail:] if path.exists() else []
            parts.append(f"----- {name} (last {len(lines)} lines of {path})\n" + "\n".join(lines))
        return "\n".join(parts)


class LoggedProcess:
    """One subprocess whose stderr is collected as it runs, for tests that read its log lines."""

    def __init__(self, argv: list[str], *, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    key: str
    envelope: Envelope
    headers: dict[str, str]
    value: bytes

    @property
    def type(self) -> str:
        return self.envelope.type


class KafkaTail:
    """Reads every record of the namespace's topics from the beginning, incrementally."""

    def __init__(self, topics: Iterable[str] = tuple(TOPICS)) -> None:
        config = {
            **client_config(),
            "group.id": f"{settings.KAFKA_NAMESPACE}test-tail",  # never committed: assign() only
            "enable.auto.commit": False,
            "log_level": 3,
        }
        self.consumer = Consumer(config)
        # Watermark queries on the assigned consumer wait for its fetcher (~0.5 s a partition).
        self.watermarks = Consumer(config)
        partitions = []
        for topic in topics:
            metadata = self.consumer.list_topics(physical_topic(topic), timeout=10).topics[
                physical_topic(topic)
            ]
            partitions += [
                TopicPartition(physical_topic(topic), p, OFFSET_BEGINNING) for p in metadata.partitions
            ]
        self.partitions = partitions
        self.consumer.assign(partitions)
        self.records: list[KafkaRecord] = []

    def catch_up(self, timeout: float = 30.0) -> list[KafkaRecord]:
        """Read up to the current end of every partition."""
        ends = {
            (tp.topic, tp.partition): self.watermarks.get_watermark_offsets(tp, timeout=10)[1]
            for tp in self.partitions
        }
        seen: dict[tuple[str, int], int] = {}
        for record in self.records:
            key = (physical_topic(record.topic), record.partition)
            seen[key] = max(seen.get(key, -1), record.offset)
        deadline = time.monotonic() + timeout
        while any(seen.get(key, -1) + 1 < end for key, end in ends.items()):
            if time.monotonic() > deadline:
                raise Timeout("could not read the topics to their end")
            for message in self.consumer.consume(num_messages=1000, timeout=0.1):
                if message.error():
                    continue
                headers = {name: (value or b"").decode() for name, value in message.headers() or []}
                self.records.append(
                    KafkaRecord(
                        topic=logical_topic(message.topic()),
                        partition=message.partition(),
                        offset=message.offset(),
                        key=(message.key() or b"").decode(),
                        envelope=Envelope.from_headers(message.headers()),
                        headers=headers,
                        value=message.value(),
                    )
                )
                seen[(message.topic(), message.partition())] = message.offset()
        return self.records

    def story(self, correlation_id: str) -> list[KafkaRecord]:
        return [record for record in self.catch_up() if record.envelope.correlation_id == correlation_id]

    def close(self) -> None:
        self.consumer.close()
        self.watermarks.close()


def consumer_lag(topics_by_context: dict[str, set[str]]) -> int:
    """Records the contexts' consumer groups have not committed yet on the topics they read."""
    lag = 0
    for context, topics in topics_by_context.items():
        probe = Consumer(
            {
                **client_config(),
                "group.id": group_id(context),
                "log_level": 3,
            }
        )
        try:
            partitions = []
            for topic in topics:
                name = physical_topic(topic)
                metadata = probe.list_topics(name, timeout=10).topics[name]
                partitions += [TopicPartition(name, p) for p in metadata.partitions]
            for committed in probe.committed(partitions, timeout=10):
                end = probe.get_watermark_offsets(committed, timeout=10)[1]
                lag += max(0, end - max(committed.offset, 0))
        finally:
            probe.close()
    return lag


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]


# --- Handlers, run the way the consumer runner runs them --------------------------------------


def envelope_for(
    event: Event, *, correlation_id: str | None = None, causation_id: str | None = None
) -> Envelope:
    """The envelope the relay would publish `event` in: a new ce_id and, unless given, a new story."""
    return Envelope(
        id=str(uuid.uuid4()),
        type=event.type_name,
        source=f"/{event.context}",
        time=format_time(timezone.now()),
        data_version=event.contract_version,
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=causation_id,
    )


def deliver(
    handler: Callable[[Any, Envelope], None], event: Event, envelope: Envelope | None = None
) -> Envelope:
    """Run a handler as the consumer runner does: in a transaction, in the event's story."""
    envelope = envelope or envelope_for(event)
    with transaction.atomic(), correlation_scope(envelope.correlation_id, causation_id=envelope.id):
        handler(event, envelope)
    return envelope
