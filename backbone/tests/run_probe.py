"""Tests that a pytest session in a subprocess runs for test_run_isolation.py and test_tiers.py.

Not collected by the suite (the name does not match test_*.py); the outer tests pass this file
to a pytest subprocess and read what it wrote to RUN_PROBE_DIR.
"""

import json
import os
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.db import connection

from backbone.conf import backbone_settings
from backbone.kafka import consumer_config, group_id, physical_topic


@pytest.mark.django_db
def test_records_its_database_and_namespace_while_its_peers_run(kafka_topics: list[str]) -> None:
    """Writes the session's database and namespace, commits an offset (so the session has a
    consumer group), then waits until RUN_PROBE_PEERS sessions have written theirs: the sessions'
    test databases all exist at the same time."""
    probe_dir = Path(os.environ["RUN_PROBE_DIR"])
    group = group_id("run-probe")
    consumer = Consumer(consumer_config(group))
    consumer.commit(offsets=[TopicPartition(physical_topic("orders"), 0, 0)], asynchronous=False)
    consumer.close()
    record = {"database": connection.settings_dict["NAME"], "namespace": backbone_settings.KAFKA_NAMESPACE}
    (probe_dir / f"{os.getpid()}.json").write_text(json.dumps(record))
    deadline = time.monotonic() + 60
    while len(list(probe_dir.glob("*.json"))) < int(os.environ["RUN_PROBE_PEERS"]):
        assert time.monotonic() < deadline, "the peer sessions did not start"
        time.sleep(0.1)
    with connection.cursor() as cursor:  # still this session's own database
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone()[0] == record["database"]


def test_needs_no_service() -> None:
    assert physical_topic("orders").endswith("orders")


@pytest.mark.django_db
def test_uses_the_database() -> None:
    assert connection.settings_dict["NAME"]


def test_uses_the_db_fixture(db: None) -> None:
    pass


def test_uses_kafka(kafka_service: None) -> None:
    pass


def test_uses_redis(redis_service: None) -> None:
    pass


@pytest.mark.e2e
def test_runs_processes() -> None:
    pass
