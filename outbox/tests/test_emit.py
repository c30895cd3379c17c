"""emit(): only inside a transaction, only to the topics of the event's own app."""

import uuid

import pytest
from django.db import transaction

from backbone import tracing
from backbone.checks import single_writer_check
from backbone.contracts import Event
from backbone.envelope import Envelope
from backbone.subscriptions import Subscription
from backbone.testing import envelope_for
from backbone.topics import TopicOwnershipError, ensure_writer
from outbox.emit import EventTooLarge, OutsideTransactionError, emit
from outbox.models import OutboxRecord


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_raises_and_writes_nothing(probe):
    key = str(uuid.uuid4())

    with pytest.raises(OutsideTransactionError, match=r"inside transaction\.atomic\(\)"):
        emit(probe(order_id=key, step=1))

    assert not OutboxRecord.objects.filter(key=key).exists()


@pytest.mark.django_db
def test_an_event_over_the_size_limit_is_refused_and_rolls_back_with_its_change(probe, settings):
    settings.BACKBONE = {**settings.BACKBONE, "EVENT_MAX_BYTES": 40}
    key = str(uuid.uuid4())

    with (
        pytest.raises(
            EventTooLarge, match=r"orders\.RelayProbe is \d+ bytes of JSON, over EVENT_MAX_BYTES \(40\)"
        ),
        transaction.atomic(),
    ):
        emit(probe(order_id=key, step=1))

    assert not OutboxRecord.objects.filter(key=key).exists()


@pytest.mark.django_db
def test_emit_inside_a_transaction_writes_the_row_the_relay_will_publish(probe):
    key = str(uuid.uuid4())
    with transaction.atomic():
        envelope = emit(probe(order_id=key, step=7))

    row = OutboxRecord.objects.get(key=key)
    assert str(row.event_id) == envelope.id
    assert (row.topic, row.event_type, row.source, row.data_version) == (
        "orders",
        "orders.RelayProbe",
        "/orders",
        1,
    )
    assert row.payload == {"order_id": key, "step": 7}
    assert row.published_at is None


def test_a_context_may_write_only_the_topics_it_owns():
    ensure_writer("orders", "orders")
    ensure_writer("stock.levels", "stock")
    with pytest.raises(TopicOwnershipError, match="its single writer is 'orders'"):
        ensure_writer("orders", "stock")
    with pytest.raises(TopicOwnershipError, match="unknown topic"):
        ensure_writer("no.such.topic", "orders")


def handler_of(context: str, emits: type[Event]) -> Subscription:
    """A handler of `context` that emits an `emits` event when it applies one."""

    def on_probe(event: Event, envelope: Envelope) -> None:
        emit(emits(order_id=event.key, step=2))

    return Subscription(context=context, event_type=emits, handler=on_probe)


@pytest.mark.django_db
def test_a_handler_of_another_context_cannot_emit_to_a_topic_it_does_not_own(probe):
    key = str(uuid.uuid4())
    cause = probe(order_id=key, step=1)
    with transaction.atomic():
        emit(cause)  # the contract's own app may
        handler_of("orders", probe).call(cause, envelope_for(cause))  # and so may its handlers
        with pytest.raises(TopicOwnershipError, match="context 'stock' may not write topic 'orders'"):
            handler_of("stock", probe).call(cause, envelope_for(cause))

    assert list(OutboxRecord.objects.filter(key=key).values_list("payload__step", flat=True)) == [1, 2]


def test_the_system_check_reports_a_contract_declared_outside_its_topics_owner(contracts):
    assert not [e for e in single_writer_check() if e.id == "backbone.E001"]

    contracts("StockTouchesOrders", context="stock", topic="orders")

    errors = [e for e in single_writer_check() if e.id == "backbone.E001"]
    assert len(errors) == 1
    assert "stock.StockTouchesOrders is declared in context 'stock'" in errors[0].msg
    assert "owned by orders" in errors[0].msg


@pytest.mark.django_db
def test_an_event_carries_the_trace_context_it_was_emitted_in_or_starts_a_trace(probe):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with transaction.atomic():
        with tracing.span_scope("process orders.X", parent, kind="consumer"):
            traced = emit(probe(order_id=str(uuid.uuid4()), step=1))
            current = tracing.current_traceparent()
        untraced = emit(probe(order_id=str(uuid.uuid4()), step=1))  # e.g. from a Celery task

    assert OutboxRecord.objects.get(event_id=traced.id).traceparent == traced.traceparent == current
    assert untraced.traceparent is not None
    assert tracing.parse(untraced.traceparent) == untraced.traceparent
    assert tracing.trace_id_of(untraced.traceparent) != tracing.trace_id_of(parent)
