"""Records nobody planned for: too large, forged, from a recreated topic, with hostile headers.

Each must become a dead letter with its reason (or be handled, when it is a valid event), and
the partition must move on; none may stop the consumer or be skipped unhandled.
"""

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from backbone.conf import backbone_settings
from backbone.kafka import admin_config, group_id, physical_topic, producer_config
from backbone.models import DeadLetter, DeadLetterReason
from backbone.provisioning import ensure_topics
from backbone.testing import envelope_for, read_topic
from backbone.tests.consumer_probe import (
    ProbeBroken,
    ProbeContextFactory,
    ProbeRecorded,
    ProbeShipped,
    applied,
    consume_until_caught_up,
    send,
    send_event,
)

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]

ONE_MB = 1_000_000


@pytest.fixture
def own_topics(settings) -> Iterator[AdminClient]:
    """Topics of this test alone, one partition each, so it may reconfigure or recreate them."""
    namespace = f"{backbone_settings.KAFKA_NAMESPACE}own-{uuid.uuid4().hex[:6]}."
    settings.BACKBONE = {**settings.BACKBONE, "KAFKA_NAMESPACE": namespace}
    admin = AdminClient(admin_config())
    _provision(admin)
    yield admin
    mine = [
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith(backbone_settings.KAFKA_NAMESPACE)
    ]
    for future in admin.delete_topics(mine, request_timeout=15).values():
        future.result()


def _provision(admin: AdminClient) -> None:
    """Create the topics, and wait until each has a partition leader to write to."""
    created = ensure_topics(partitions=1)
    deadline = time.monotonic() + 30
    while True:
        topics = admin.list_topics(timeout=10).topics
        if all(name in topics and topics[name].partitions for name in created):
            return
        assert time.monotonic() < deadline, "the test's topics got no partitions"
        time.sleep(0.2)


def _recreate(admin: AdminClient, topic: str) -> None:
    """Delete a topic and provision it again, as a move to a new cluster or an operator would."""
    admin.delete_topics([physical_topic(topic)], request_timeout=15)[physical_topic(topic)].result()
    deadline = time.monotonic() + 30
    while physical_topic(topic) in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} was not deleted"
        time.sleep(0.2)
    _provision(admin)


def _dlq_copy(dead_letter_id: int) -> tuple[bytes | None, dict[str, str]]:
    """The value and headers of the copy the runner sent to orders.dlq for this dead letter."""
    for record in read_topic("orders.dlq"):
        if record.headers.get("dlq_dead_letter_id") == str(dead_letter_id):
            return record.value, record.headers
    raise AssertionError(f"dead letter #{dead_letter_id} has no copy on orders.dlq")


def _send_one_megabyte_event(key: str) -> None:
    """A record ten times the size of anything the shop emits, from a producer that allows it."""
    padding = "x" * (ONE_MB - 100)
    value = f'{{"probe_key": "{key}", "seq": 1, "padding": "{padding}"}}'.encode()
    large = Producer(producer_config(**{"message.max.bytes": 2 * ONE_MB}))
    headers = envelope_for(ProbeRecorded(probe_key=key, seq=1)).headers()
    large.produce(physical_topic("orders"), key=key.encode(), value=value, headers=headers)
    assert large.flush(30) == 0


def _dead_letters(context: str) -> dict[str | None, DeadLetter]:
    return {letter.key: letter for letter in DeadLetter.objects.filter(consumer_group=group_id(context))}


def test_a_record_over_the_size_limit_is_dead_lettered_whole_and_its_copy_truncated(
    own_topics: AdminClient, make_probe_context: ProbeContextFactory
) -> None:
    context = make_probe_context()
    _send_one_megabyte_event("huge")
    send_event(ProbeRecorded(probe_key="after", seq=1))

    stats = consume_until_caught_up(context)

    letter = _dead_letters(context)["huge"]
    assert letter.reason == DeadLetterReason.INVALID_RECORD
    assert f"over the event size limit of {backbone_settings.EVENT_MAX_BYTES} bytes" in letter.error
    assert len(bytes(letter.value)) > ONE_MB - 100  # the table keeps the record whole
    value, headers = _dlq_copy(letter.pk)
    assert len(value or b"") == backbone_settings.EVENT_MAX_BYTES
    assert int(headers["dlq_value_bytes"]) == len(bytes(letter.value))
    assert applied(context, "after") == [1]  # the partition moved on
    assert (stats.dead_lettered, stats.handled) == (1, 1)


def test_a_copy_the_dead_letter_topic_refuses_for_good_still_leaves_the_dead_letter(
    own_topics: AdminClient, make_probe_context: ProbeContextFactory
) -> None:
    context = make_probe_context()
    too_small = ConfigEntry("max.message.bytes", "100", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", physical_topic("orders.dlq"), incremental_configs=[too_small])
    for future in own_topics.incremental_alter_configs([resource]).values():
        future.result()
    send("orders", key="garbage", value=b"not an event", headers=[])
    send_event(ProbeRecorded(probe_key="after", seq=1))

    stats = consume_until_caught_up(context)

    letter = _dead_letters(context)["garbage"]
    assert letter.reason == DeadLetterReason.INVALID_RECORD
    assert letter.error.startswith("not copied to the .dlq topic: ")
    assert "missing CloudEvents headers" in letter.error
    assert bytes(letter.value) == b"not an event"
    assert applied(context, "after") == [1]
    assert stats.dead_lettered == 1


def test_a_new_record_at_the_position_of_a_pending_dead_letter_of_a_recreated_topic_is_handled(
    own_topics: AdminClient, make_probe_context: ProbeContextFactory
) -> None:
    context = make_probe_context()
    old_key = f"old-{uuid.uuid4().hex[:6]}"  # ProbeBroken outlives a test
    ProbeBroken.objects.create(probe_key=old_key)
    old = send_event(ProbeRecorded(probe_key=old_key, seq=1))
    consume_until_caught_up(context, max_attempts=1)
    assert _dead_letters(context)[old_key].offset == 0

    _recreate(own_topics, "orders")
    new = send_event(ProbeRecorded(probe_key="new", seq=1))  # offsets start again at 0
    stats = consume_until_caught_up(context)

    assert applied(context, "new") == [1]
    assert stats.handled == 1
    letters = DeadLetter.objects.filter(consumer_group=group_id(context))
    assert [(letter.event_id, letter.offset) for letter in letters] == [(old.id, 0)]
    assert new.id != old.id


def test_a_new_failing_record_at_the_position_of_a_pending_dead_letter_becomes_a_dead_letter_too(
    own_topics: AdminClient, make_probe_context: ProbeContextFactory
) -> None:
    context = make_probe_context()
    old_key = f"old-{uuid.uuid4().hex[:6]}"  # ProbeBroken outlives a test
    ProbeBroken.objects.create(probe_key=old_key)
    send_event(ProbeRecorded(probe_key=old_key, seq=1))
    consume_until_caught_up(context, max_attempts=1)

    _recreate(own_topics, "orders")
    send("orders", key="new", value=b"garbage at offset 0", headers=[])
    stats = consume_until_caught_up(context)

    letters = _dead_letters(context)
    assert (letters[old_key].offset, letters["new"].offset) == (0, 0)
    assert letters["new"].record_id.startswith("sha256:")
    assert stats.dead_lettered == 1


def test_events_not_from_the_single_writer_of_their_topic_are_dead_lettered(probe_context: str) -> None:
    forged_source = envelope_for(ProbeRecorded(probe_key="forged-source", seq=1))
    headers = [(n, b"/shipments" if n == "ce_source" else v) for n, v in forged_source.headers()]
    send("orders", key="forged-source", value=b'{"probe_key": "forged-source", "seq": 1}', headers=headers)
    shipped = ProbeShipped(probe_key="wrong-topic", amount=1)  # a `shipments` event, sent to `orders`
    send("orders", key="wrong-topic", value=shipped.to_json(), headers=envelope_for(shipped).headers())
    send_event(ProbeRecorded(probe_key="genuine", seq=1))

    stats = consume_until_caught_up(probe_context)

    letters = _dead_letters(probe_context)
    assert set(letters) == {"forged-source", "wrong-topic"}
    assert (
        "ce_source '/shipments' is not the single writer of 'orders' (/orders)"
        in letters["forged-source"].error
    )
    assert "is published on 'shipments', not on 'orders'" in letters["wrong-topic"].error
    assert applied(probe_context, "forged-source") == applied(probe_context, "wrong-topic") == []
    assert applied(probe_context, "genuine") == [1]
    assert (stats.dead_lettered, stats.handled) == (2, 1)


def test_keys_and_headers_longer_than_any_of_ours_are_dead_lettered_not_fatal(probe_context: str) -> None:
    long_key = "k" * 5000
    send_event(ProbeRecorded(probe_key=long_key, seq=1))
    send_event(ProbeRecorded(probe_key="long-correlation", seq=1), correlation_id="c" * 5000)
    headers = envelope_for(ProbeRecorded(probe_key="long-id", seq=1)).headers()
    headers = [(n, b"i" * 5000 if n == "ce_id" else v) for n, v in headers]
    send("orders", key="long-id", value=b'{"probe_key": "long-id", "seq": 1}', headers=headers)
    send_event(ProbeRecorded(probe_key="after", seq=1))

    stats = consume_until_caught_up(probe_context)

    letters = {(letter.key or "")[:16]: letter for letter in _dead_letters(probe_context).values()}
    assert {key: letter.reason for key, letter in letters.items()} == {
        "k" * 16: DeadLetterReason.INVALID_RECORD,
        "long-correlation": DeadLetterReason.INVALID_RECORD,
        "long-id": DeadLetterReason.INVALID_RECORD,
    }
    assert len(letters["k" * 16].key or "") == 200  # what the column holds
    assert "record key of 5000 characters is over 200" in letters["k" * 16].error
    assert "ce_correlationid is over 128 characters" in letters["long-correlation"].error
    assert "ce_id is not a UUID" in letters["long-id"].error
    assert applied(probe_context, "after") == [1]
    assert stats.dead_lettered == 3


def test_the_relay_producer_refuses_what_no_topic_would_take() -> None:
    """The producer's batch limit stays under the topics' limit (docs/design.md, Event size)."""
    producer = Producer(producer_config())
    with pytest.raises(KafkaException, match="too large"):
        producer.produce(
            physical_topic("orders"), value=b"x" * (backbone_settings.KAFKA_TOPIC_MAX_MESSAGE_BYTES + 1)
        )
    assert backbone_settings.KAFKA_PRODUCER_MAX_BYTES < backbone_settings.KAFKA_TOPIC_MAX_MESSAGE_BYTES
