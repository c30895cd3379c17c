"""The relay under Kafka ACLs (docs/security.md): without the WRITE grant its records are
refused; it says so, the rows wait in the outbox, and they are published once it is granted.

The broker is a disposable one with SASL users and the StandardAuthorizer
(backbone/testing/broker.py); the relay is the real `manage.py relay` process.
"""

import uuid
from collections.abc import Iterator

import pytest

from backbone.testing.broker import ThrowawayKafka
from outbox.models import OutboxRecord

from .conftest import RelayStarter, emit_steps, process_env, wait_for_published

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayKafka]:
    kafka = ThrowawayKafka(tmp_path_factory.mktemp("sasl-kafka"), sasl=True)
    try:
        kafka.start()
        kafka.manage("admin", "topics", "--partitions", "1")
        yield kafka
    finally:
        kafka.stop()


def test_refused_rows_wait_in_the_outbox_until_the_relay_is_granted_write(
    probe, start_relay: RelayStarter, broker: ThrowawayKafka
) -> None:
    # relay2 is a known user without any grant yet.
    env = process_env(**broker.settings_for("relay2"), RELAY_MAX_BACKOFF_SECONDS="1")
    relay = start_relay(env=env)
    relay.wait_for_log("is now the leader")
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(3))

    # Without WRITE on any topic the idempotent producer gets no producer id: a fatal error.
    relay.wait_for_log("fatal error (CLUSTER_AUTHORIZATION_FAILED", timeout=60)
    relay.wait_for_log("Kafka refused")
    assert OutboxRecord.objects.filter(key=key, published_at__isnull=True).count() == 3
    assert relay.running

    broker.manage("admin", "kafka_acls", "--apply", "--relay-principal", "relay2")
    wait_for_published({key}, timeout=60)
    assert relay.stop() == 0
