"""Fixtures of the outbox tests: test-only contracts, and the relay in-process or as a process."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backbone.conf import backbone_settings
from backbone.contracts import Event, registry
from backbone.testing import database_url, wait_for
from outbox.backoff import StopFlag
from outbox.emit import emit
from outbox.models import OutboxRecord
from outbox.publisher import relay_producer_config
from outbox.relay import Clock, ProducerFactory, Relay, RelayOptions, database_connector

ContractFactory = Callable[..., type[Event]]


# --- contracts -------------------------------------------------------------------------------


@pytest.fixture
def contracts() -> Iterator[ContractFactory]:
    """Declare test-only contracts (`order_id`, `step`) in any context; forgotten afterwards,
    so they never reach the system checks of other tests."""
    saved = dict(registry._classes)

    def declare(name: str = "RelayProbe", *, context: str = "orders", topic: str = "orders") -> type[Event]:
        fields = {"order_id": str, "step": int}
        namespace = {"__annotations__": fields}
        return type(name, (Event,), namespace, topic=topic, key="order_id", app_label=context)

    yield declare
    registry._classes.clear()
    registry._classes.update(saved)


@pytest.fixture
def probe(contracts: ContractFactory) -> type[Event]:
    """`orders.RelayProbe` on topic `orders`, keyed by `order_id`."""
    return contracts()


def emit_steps(event_class: type[Event], key: str, steps: range | list[int]) -> list[str]:
    """Emit one event per step for aggregate `key`, in one transaction; returns the ce_ids."""
    with transaction.atomic():
        return [emit(event_class(order_id=key, step=step)).id for step in steps]


# --- waiting ---------------------------------------------------------------------------------


def wait_for_published(keys: set[str], *, timeout: float = 30.0) -> None:
    wait_for(
        lambda: not OutboxRecord.objects.filter(key__in=keys, published_at__isnull=True).exists(),
        timeout=timeout,
        what=f"the rows of {len(keys)} aggregate(s) to be published",
    )


# --- the relay in this process ---------------------------------------------------------------


def make_relay(
    *,
    producer_factory: ProducerFactory | None = None,
    clock: Clock = timezone.now,
    stop: StopFlag | None = None,
    **options: Any,
) -> Relay:
    """A relay on the test database; the real Kafka producer unless a factory is given."""
    return Relay(
        connect=database_connector(connection.settings_dict),
        producer_factory=producer_factory or (lambda: Producer(relay_producer_config())),
        clock=clock,
        stop=stop or StopFlag(),
        options=RelayOptions(**{"kafka_address": backbone_settings.KAFKA_BOOTSTRAP_SERVERS, **options}),
    )


def publish_once(**kwargs: Any) -> Relay:
    relay = make_relay(**kwargs)
    relay.run(once=True)
    return relay


# --- the relay as a process ------------------------------------------------------------------


def admin_connection() -> psycopg.Connection:
    """An autocommit connection to the test database, outside Django's."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
        autocommit=True,
    )


def process_env(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("BACKBONE_FAILPOINTS", None)
    return {**env, **overrides}


@dataclass
class RelayProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, after: int = 0, timeout: float = 30.0) -> None:
        """Wait until the log (from character `after` on) contains `text`."""
        wait_for(lambda: text in self.log()[after:], timeout=timeout, what=f"{self.name} to log {text!r}")

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, signum: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        if self.running:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


RelayStarter = Callable[..., RelayProcess]


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[RelayStarter]:
    """Start `manage.py relay` subprocesses on the test database; all are killed afterwards
    (their logs are printed, so a failing test shows them)."""
    started: list[RelayProcess] = []

    def start(*args: str, name: str = "relay", env: dict[str, str] | None = None) -> RelayProcess:
        log_path = tmp_path / f"{name}-{len(started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "relay", *args],
                cwd=settings.BASE_DIR,
                env=env or process_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(RelayProcess(name, process, log_path))
        return started[-1]

    yield start
    for relay in started:
        if relay.running:
            relay.process.kill()
        relay.process.wait(timeout=30)
        print(f"--- {relay.name} (exit {relay.process.returncode}) ---\n{relay.log()}")
