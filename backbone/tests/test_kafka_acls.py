"""The ACLs of docs/security.md, applied to a real broker, lock every topic to its writer.

A disposable broker with SASL/PLAIN users and the StandardAuthorizer (backbone.testing.broker)
gets the topics from `manage.py topics` and the ACLs from `manage.py kafka_acls --apply`, both run as
the administrator exactly as in production; then the shop's own client configs, with each
principal's settings, try what that principal may and may not do.
"""

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from backbone.kafka import consumer_config, group_id, physical_topic, producer_config
from backbone.preflight import ServiceUnavailable, check_kafka, check_topics
from backbone.testing.broker import ThrowawayKafka
from backbone.testing.settings import override_backbone

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayKafka]:
    kafka = ThrowawayKafka(tmp_path_factory.mktemp("sasl-kafka"), sasl=True)
    try:
        kafka.start()
        for command in (["topics", "--partitions", "1"], ["kafka_acls", "--apply"]):
            kafka.manage("admin", *command)
        yield kafka
    finally:
        kafka.stop()


def produce(kafka: ThrowawayKafka, user: str, topic: str) -> KafkaError | None:
    """Write one record to `topic` as `user` with the shop's producer settings; the delivery error."""
    with override_backbone(**kafka.settings_for(user)):
        producer = Producer(producer_config(**{"message.timeout.ms": 10_000}, log_level=0))
        name = physical_topic(topic)
    outcome: list[KafkaError | None] = []
    try:
        producer.produce(
            name, key=uuid.uuid4().hex, value=b"{}", on_delivery=lambda error, _: outcome.append(error)
        )
    except KafkaException as refused_at_once:  # the client knew the topic's answer already
        return refused_at_once.args[0]
    producer.flush(15)
    assert outcome, f"no delivery report for {user} -> {topic}"
    return outcome[0]


def consumer_as(kafka: ThrowawayKafka, user: str) -> Consumer:
    """A consumer with the shop's settings in the group of context `user`."""
    with override_backbone(**kafka.settings_for(user)):
        return Consumer(consumer_config(group_id(user), log_level=0))


def read_first(kafka: ThrowawayKafka, user: str, topic: str) -> bytes | None:
    """The first record of `topic` read and committed in `user`'s consumer group."""
    consumer = consumer_as(kafka, user)
    try:
        consumer.assign([TopicPartition(physical_topic(topic), 0, 0)])
        message = consumer.poll(15)
        assert message is not None, f"{user} read nothing from {topic}"
        assert message.error() is None, message.error()
        consumer.commit(message, asynchronous=False)  # needs READ on the group too
        return message.value()
    finally:
        consumer.close()


def metadata_error(kafka: ThrowawayKafka, user: str, topic: str) -> KafkaError | None:
    """What the broker tells `user` about `topic` (READ and WRITE imply DESCRIBE)."""
    consumer = consumer_as(kafka, user)
    try:
        name = physical_topic(topic)
        return consumer.list_topics(name, timeout=10).topics[name].error
    finally:
        consumer.close()


def refused(error: KafkaError | None) -> bool:
    return error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_only_the_relay_principal_writes_the_event_topics(broker: ThrowawayKafka) -> None:
    assert produce(broker, "relay", "orders") is None
    assert produce(broker, "relay", "stock.levels") is None
    # Stock is a consumer of `orders`, and even its own events reach Kafka through the relay.
    for topic in ("orders", "stock.levels"):
        assert refused(produce(broker, "stock", topic)), topic


def test_a_context_reads_its_subscriptions_and_writes_only_their_dead_letters(broker: ThrowawayKafka) -> None:
    assert produce(broker, "relay", "orders") is None
    assert read_first(broker, "stock", "orders") == b"{}"
    assert produce(broker, "stock", "orders.dlq") is None
    # Not its subscription, not its dead letters, not anyone's dead letters but a consumer's.
    assert metadata_error(broker, "stock", "orders") is None
    assert refused(metadata_error(broker, "stock", "payments"))
    for user, topic in (("stock", "payments.dlq"), ("relay", "orders.dlq")):
        assert refused(produce(broker, user, topic)), (user, topic)


def test_a_wrong_password_is_named_at_start_up(broker: ThrowawayKafka) -> None:
    wrong = broker.settings_for("stock", password="not-the-password")
    expected = "refused the credentials of KAFKA_SASL_USERNAME='stock'"
    with override_backbone(**wrong), pytest.raises(ServiceUnavailable, match=expected):
        check_kafka(timeout=3)


def test_a_consumer_without_a_grant_is_told_so_at_start_up(broker: ThrowawayKafka) -> None:
    """`manage.py consume` checks its topics first; a missing grant is not a missing topic."""
    denied = "Kafka user 'stock' is not authorized for topics payments: grant them"
    with override_backbone(**broker.settings_for("stock")):
        check_topics(["orders"])
        with pytest.raises(ServiceUnavailable, match=denied):
            check_topics(["orders", "payments"])
    missing = "topics missing in Kafka: no-such-topic; create them"
    with override_backbone(**broker.settings_for("admin")), pytest.raises(ServiceUnavailable, match=missing):
        check_topics(["orders", "no-such-topic"])
