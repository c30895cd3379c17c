"""The metrics machinery without services: gunicorn's multiprocess directory, consumer lag
series, the relay's per-batch counting. The endpoints themselves: orders/tests/test_metrics.py."""

import runpy
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from backbone.consumer.metrics import ConsumerMetrics
from backbone.consumer.stats import RunStats
from outbox.metrics import count_published
from outbox.store import PendingRow, Placement

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gunicorn_config.py"


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gunicorn_config_empties_the_multiprocess_directory_at_start(tmp_path, monkeypatch) -> None:
    directory = tmp_path / "prometheus-web"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"a previous run's counts")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    config = runpy.run_path(str(CONFIG))
    config["on_starting"](None)
    assert directory.is_dir()
    assert list(directory.iterdir()) == []
    config["on_exit"](None)
    assert directory.is_dir(), "a directory named in the environment is the operator's: kept"


def test_gunicorn_config_makes_a_directory_of_its_own_without_the_variable(monkeypatch) -> None:
    # Set, then deleted: monkeypatch then restores the variable's absence after the config set it.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    config = runpy.run_path(str(CONFIG))
    directory = Path(config["_directory"])
    config["on_starting"](None)
    assert directory.is_dir()
    config["on_exit"](None)
    assert not directory.exists()


def test_consumer_lag_series_follow_the_assignment_and_outcomes_count_per_batch() -> None:
    group = f"group-{uuid.uuid4().hex[:8]}"
    metrics = ConsumerMetrics(group)
    metrics.set_lag({("orders", 0): 5, ("orders", 1): 0})
    assert value("backbone_consumer_lag_records", group=group, topic="orders", partition="0") == 5
    metrics.set_lag({("orders", 1): 2})  # partition 0 was revoked: its series goes
    assert value("backbone_consumer_lag_records", group=group, topic="orders", partition="0") is None
    assert value("backbone_consumer_lag_records", group=group, topic="orders", partition="1") == 2

    metrics.batch_applied(RunStats(records=4, handled=3, duplicates=1), 0.25)
    metrics.count(RunStats(retries=1))
    counted = {
        outcome: value("backbone_consumer_records_total", group=group, outcome=outcome)
        for outcome in ("handled", "duplicate", "skipped", "parked", "dead_lettered", "retried")
    }
    assert counted == {
        "handled": 3,
        "duplicate": 1,
        "skipped": 0,
        "parked": 0,
        "dead_lettered": 0,
        "retried": 1,
    }
    assert value("backbone_consumer_batch_duration_seconds_count", group=group) == 1
    assert value("backbone_consumer_batch_duration_seconds_sum", group=group) == pytest.approx(0.25)


def _row(row_id: int, topic: str, *, committed_at: datetime) -> PendingRow:
    # The relay reads the commit time (or, when it is not tracked, occurred_at) in epoch seconds.
    return PendingRow(row_id, topic, "k", "{}", [], committed_at.timestamp())


def test_the_relay_counts_confirmed_rows_per_topic_and_latency_from_the_commit() -> None:
    delivered = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    topic = f"probe-{uuid.uuid4().hex[:8]}"
    rows = [
        _row(1, topic, committed_at=delivered - timedelta(seconds=2)),
        _row(2, topic, committed_at=delivered - timedelta(seconds=4)),
        _row(3, f"{topic}-unconfirmed", committed_at=delivered),
    ]
    count_before = value("outbox_publish_latency_seconds_count") or 0
    sum_before = value("outbox_publish_latency_seconds_sum") or 0
    buckets_before = {
        le: value("outbox_publish_latency_seconds_bucket", le=le) or 0 for le in ("1.0", "2.5", "5.0")
    }
    count_published(rows, [Placement(1, 0, 10), Placement(2, 1, 7)], delivered)
    assert value("outbox_records_published_total", topic=topic) == 2
    assert value("outbox_records_published_total", topic=f"{topic}-unconfirmed") is None
    assert value("outbox_publish_latency_seconds_count") == count_before + 2
    assert value("outbox_publish_latency_seconds_sum") == pytest.approx(sum_before + 6)
    buckets = {le: value("outbox_publish_latency_seconds_bucket", le=le) for le in ("1.0", "2.5", "5.0")}
    assert buckets == {
        "1.0": buckets_before["1.0"],
        "2.5": buckets_before["2.5"] + 1,
        "5.0": buckets_before["5.0"] + 2,
    }


def test_a_scrape_leaves_database_values_out_while_postgresql_is_unreachable(
    django_db_blocker, monkeypatch, caplog
) -> None:
    """The scrape answers with everything else, and says in the log why values are missing."""
    from django.db import connection
    from prometheus_client import CollectorRegistry, generate_latest

    from backbone.metrics import DeadLetterCollector, query_rows
    from backbone.testing import free_port
    from outbox.metrics import OutboxBacklogCollector

    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(free_port()))  # nothing listens
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeadLetterCollector())
    registry.register(OutboxBacklogCollector())
    try:
        with django_db_blocker.unblock():
            assert query_rows("SELECT 1") is None
            text = generate_latest(registry).decode()
    finally:
        connection.close()
    assert "outbox_rows_waiting" not in text
    assert "backbone_dead_letters_pending{" not in text
    assert "metrics: PostgreSQL query failed" in caplog.text
