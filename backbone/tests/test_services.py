"""Smoke tests: the suite talks to the real PostgreSQL, Redis, Kafka and a Celery worker."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from backbone.conf import backbone_settings
from backbone.tasks import worker_pid
from backbone.testing import terminate


@pytest.mark.django_db
def test_database_is_postgresql_with_logical_wal() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")
        cursor.execute("SHOW wal_level")
        assert cursor.fetchone()[0] == "logical"


@pytest.mark.django_db
def test_model_round_trip() -> None:
    user_model = get_user_model()
    user_model.objects.create_user(username="round-trip", email="rt@example.com", password="x" * 12)
    loaded = user_model.objects.get(username="round-trip")
    assert loaded.email == "rt@example.com"
    assert loaded.check_password("x" * 12)


@pytest.mark.usefixtures("redis_service")
def test_redis_round_trip() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"test:{uuid.uuid4()}"
    client.set(key, "value", ex=60)
    assert client.get(key) == b"value"
    client.delete(key)


@pytest.fixture
def kafka_topic(kafka_service: None) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS})
    name = f"test.smoke.{uuid.uuid4().hex[:12]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(10)
    yield name
    admin.delete_topics([name])[name].result(10)


def _consumer(group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def _poll_values(consumer: Consumer, count: int, timeout: float = 20.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = timeout
    while len(values) < count and deadline > 0:
        message = consumer.poll(0.5)
        deadline -= 0.5
        if message is not None and message.error() is None:
            values.append(message.value())
    return values


def test_kafka_round_trip_with_committed_offset(kafka_topic: str) -> None:
    producer = Producer({"bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS, "acks": "all"})
    for number in range(3):
        producer.produce(kafka_topic, key=b"k", value=f"message-{number}".encode())
    assert producer.flush(10) == 0

    group = f"smoke-{uuid.uuid4().hex[:8]}"
    first = _consumer(group)
    first.subscribe([kafka_topic])
    assert _poll_values(first, 2) == [b"message-0", b"message-1"]
    # Commit after the second record only: the group resumes at the third.
    first.commit(offsets=[TopicPartition(kafka_topic, 0, 2)], asynchronous=False)
    assert first.committed([TopicPartition(kafka_topic, 0)], timeout=10)[0].offset == 2
    first.close()

    second = _consumer(group)
    second.subscribe([kafka_topic])
    assert _poll_values(second, 1) == [b"message-2"]
    second.close()


@pytest.fixture
def celery_worker_process(redis_service: None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    queue = f"smoke-{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--queues",
            queue,
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=settings.BASE_DIR,
    )
    yield process, queue
    terminate(process)


def test_celery_task_runs_in_a_real_worker(
    celery_worker_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, queue = celery_worker_process
    result = worker_pid.apply_async(queue=queue)
    # The solo pool runs the task in the worker's main process.
    assert result.get(timeout=60) == process.pid
    assert process.pid != os.getpid()
