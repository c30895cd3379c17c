"""Kafka goes away and comes back: rows wait in the outbox, nothing is lost or reordered.

The test runs a second, disposable broker (backbone.testing.broker: its own directory and
ports), so stopping it disturbs no one else.
"""

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backbone.testing import read_topic
from backbone.testing.broker import ThrowawayKafka
from outbox.models import OutboxRecord

from .conftest import RelayStarter, emit_steps, process_env, wait_for_published

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

# The producers' default delivery timeout for the relay under test, far below librdkafka's
# 300 s, so an outage longer than it stays short; the relay must not inherit it.
PRODUCER_TIMEOUT_MS = 3000
OUTAGE_SECONDS = 8.0


@pytest.fixture
def disposable_kafka(tmp_path: Path) -> Iterator[ThrowawayKafka]:
    broker = ThrowawayKafka(tmp_path / "kafka")
    yield broker
    broker.stop()


def steps_on_kafka(records: list, key: str) -> list[int]:
    """Every record of `key` on Kafka, copies included: the steps as a consumer reads them."""
    return [json.loads(record.value)["step"] for record in records if record.key == key]


def test_rows_wait_while_kafka_is_down_and_all_arrive_in_order_when_it_is_back(
    probe, start_relay: RelayStarter, disposable_kafka: ThrowawayKafka
):
    bootstrap = disposable_kafka.bootstrap
    relay = start_relay(
        env=process_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            RELAY_MAX_BACKOFF_SECONDS="2",
            KAFKA_PRODUCER_TIMEOUT_MS=str(PRODUCER_TIMEOUT_MS),
        )
    )

    # 1. The relay starts although Kafka is not there yet; writes still commit.
    relay.wait_for_log("is now the leader")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    emit_steps(probe, first, range(3))
    relay.wait_for_log(f"Kafka unavailable at {bootstrap}; 3 rows waiting; retrying in", timeout=60)
    assert relay.running

    # 2. Kafka comes up: the waiting rows are published.
    disposable_kafka.start()
    disposable_kafka.manage("admin", "topics")
    wait_for_published({first}, timeout=120)

    # 3. Kafka goes away mid-life: more writes commit and wait in the outbox.
    disposable_kafka.stop()
    logged = len(relay.log())
    emit_steps(probe, first, range(3, 6))
    emit_steps(probe, second, range(3))
    relay.wait_for_log(f"Kafka unavailable at {bootstrap}; 6 rows waiting", after=logged, timeout=60)
    # The six records now wait in the relay's producer. Kafka stays away longer than any
    # producer timeout of this test (PRODUCER_TIMEOUT_MS): a relay whose records expire
    # would report them refused and publish them again.
    time.sleep(OUTAGE_SECONDS)
    assert OutboxRecord.objects.filter(published_at__isnull=True).count() == 6
    assert relay.running

    # 4. Kafka is back (same data): every row arrives once, each aggregate in order.
    disposable_kafka.start()
    wait_for_published({first, second}, timeout=120)
    records = read_topic("orders", keys={first, second}, bootstrap=bootstrap, at_least=9, timeout=60)
    assert steps_on_kafka(records, first) == list(range(6))
    assert steps_on_kafka(records, second) == list(range(3))
    assert len({record.event_id for record in records}) == len(records) == 9
    assert "Kafka refused" not in relay.log()  # the records waited; none expired
    assert relay.stop() == 0
