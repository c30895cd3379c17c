"""Contracts that evolve under a running shop: tolerant reader, newer versions, structured mode.

Real PostgreSQL and Kafka: records go through the topics and the consumer runner, as in
test_deadletters.py. A rolling deploy is played in two phases: a consumer that reads the probe
contract up to v2, then one that reads v3 (the same contract, its version raised for the test).
"""

import json
import uuid
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as cloudevents_kafka
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from backbone.contracts import ContractError, Event, registry
from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus, InboxEntry, ParkedRecord
from backbone.testing import envelope_for
from backbone.tests.consumer_probe import (
    ProbeApplied,
    ProbeRecorded,
    applied,
    consume_until_caught_up,
    send,
    send_event,
)
from orders.events import OrderRequested
from stock.events import StockLevelChanged

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _send_v(key: str, seq: int, version: int, **extra: Any) -> None:
    """A ProbeRecorded as a newer release would publish it: version `version`, more fields."""
    payload = {"probe_key": key, "seq": seq, "amount": seq, **extra}
    envelope = envelope_for(ProbeRecorded(probe_key=key, seq=seq), data_version=version)
    send("orders", key=key, value=json.dumps(payload).encode(), headers=envelope.headers())


# --- Tolerant reader, strict writer -------------------------------------------------------------


def test_a_record_with_a_field_this_consumer_does_not_know_is_applied(probe_context: str) -> None:
    _send_v("additive", 1, 2, warehouse="B")

    stats = consume_until_caught_up(probe_context)

    assert applied(probe_context, "additive") == [1]
    assert not DeadLetter.objects.filter(consumer_group=group_id(probe_context)).exists()
    assert (stats.handled, stats.dead_lettered, stats.parked) == (1, 0, 0)


def test_decode_ignores_unknown_fields_at_every_level_but_building_a_contract_refuses_them() -> None:
    order_id = str(uuid.uuid4())
    lines = [{"sku": "tea", "quantity": 1, "unit_price": "2.50", "gift_wrap": True}]
    payload = {"order_id": order_id, "customer_id": 7, "lines": lines, "total": "2.50", "coupon": "X"}

    decoded = registry.decode("orders.OrderRequested", 1, json.dumps(payload).encode())

    assert isinstance(decoded, OrderRequested)
    assert decoded.lines[0].sku == "tea"
    level = {"sku": "tea", "name": "Tea", "price": "2.50", "on_hand": 3, "reserved": 0, "available": 3}
    with pytest.raises(ValidationError, match="warehouse\n  Extra inputs are not permitted"):
        StockLevelChanged(**level, version=1, warehouse="B")  # what emit() is given
    with pytest.raises(ValidationError, match="warehouse\n  Extra inputs are not permitted"):
        StockLevelChanged.model_validate({**level, "version": 1, "warehouse": "B"})
    # An operator's edit of a dead letter stays strict too: a typo must not vanish.
    with pytest.raises(ContractError, match="gift_wrap: Extra inputs are not permitted"):
        registry.decode("orders.OrderRequested", 1, json.dumps(payload).encode(), strict=True)


def test_a_contract_with_a_nested_part_that_cannot_be_read_tolerantly_is_refused() -> None:
    class Part(BaseModel):
        sku: str

    with pytest.raises(TypeError, match=r"nested models must derive from Contract: parts \(Part\)"):

        class Strict(Event, topic="orders", key="order_id", app_label="orders"):
            order_id: str
            parts: tuple[Part, ...]


# --- Newer versions ---------------------------------------------------------------------------


def _knows_v3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deploy the consumer of the next release: it reads ProbeRecorded v3 (v2 is upcast)."""
    monkeypatch.setattr(ProbeRecorded, "contract_version", 3)
    monkeypatch.setitem(registry._upcasters, ("orders.ProbeRecorded", 2), dict)


def test_a_newer_version_is_kept_and_applied_once_a_consumer_reads_it(
    probe_context: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = group_id(probe_context)
    _send_v("next", 1, 3, colour="red")
    send_event(ProbeRecorded(probe_key="next", seq=2, amount=2))  # v2, behind it in the key's order
    send_event(ProbeRecorded(probe_key="other", seq=1, amount=1))

    first = consume_until_caught_up(probe_context)

    kept = DeadLetter.objects.get(consumer_group=group, key="next")
    assert kept.reason == DeadLetterReason.NEWER_VERSION
    assert kept.status == DeadLetterStatus.PENDING
    assert kept.error == "orders.ProbeRecorded v3 is newer than this consumer reads (v2)"
    assert ParkedRecord.objects.filter(dead_letter=kept).count() == 1
    assert applied(probe_context, "next") == []
    assert applied(probe_context, "other") == [1]
    assert (first.handled, first.dead_lettered, first.parked) == (1, 0, 2)

    # A consumer of the same release starts again: the record still waits, nothing is lost.
    consume_until_caught_up(probe_context)
    assert DeadLetter.objects.get(pk=kept.pk).status == DeadLetterStatus.PENDING

    _knows_v3(monkeypatch)
    second = consume_until_caught_up(probe_context)

    assert applied(probe_context, "next") == [1, 2]
    kept.refresh_from_db()
    assert kept.status == DeadLetterStatus.REPLAYED
    assert not ParkedRecord.objects.filter(dead_letter=kept).exists()
    assert second.handled == 2
    assert InboxEntry.objects.filter(consumer_group=group).count() == 3


# --- Structured content mode --------------------------------------------------------------------


def _structured(key: str, seq: int, **attributes: Any) -> cloudevents_kafka.KafkaMessage:
    """A ProbeRecorded in structured mode, as the official CloudEvents SDK writes it."""
    event = CloudEvent(
        attributes={
            "id": str(uuid.uuid4()),
            "type": "orders.ProbeRecorded",
            "source": "/orders",
            "datacontenttype": "application/json",
            "dataversion": "2",
            "correlationid": str(uuid.uuid4()),
            **attributes,
        },
        data={"probe_key": key, "seq": seq, "amount": seq},
    )
    return cloudevents_kafka.to_structured_event(event, key_mapper=lambda _: key)


def _send_structured(key: str, value: bytes, content_type: bytes = b"application/cloudevents+json") -> None:
    send("orders", key=key, value=value, headers=[("content-type", content_type)])


def test_a_structured_mode_record_is_applied_exactly_once(probe_context: str) -> None:
    message = _structured("structured", 1)
    assert message.headers == {"content-type": b"application/cloudevents+json"}
    story = json.loads(message.value)["correlationid"]
    _send_structured("structured", message.value)
    # The same event again, its content type spelled as the binding allows: the inbox skips it.
    _send_structured("structured", message.value, b"Application/CloudEvents+JSON; charset=utf-8")

    stats = consume_until_caught_up(probe_context)

    assert applied(probe_context, "structured") == [1]
    assert ProbeApplied.objects.get(context=probe_context).correlation_id == story
    assert (stats.handled, stats.duplicates, stats.dead_lettered) == (1, 1, 0)


def test_a_malformed_structured_record_is_dead_lettered_with_its_reason(probe_context: str) -> None:
    _send_structured("bad-json", b'{"specversion": "1.0", "id": ')
    no_story = json.loads(_structured("no-story", 1).value)
    del no_story["correlationid"]
    _send_structured("no-story", json.dumps(no_story).encode())
    no_data = json.loads(_structured("no-data", 1).value)
    del no_data["data"]
    _send_structured("no-data", json.dumps(no_data).encode())
    _send_structured("fine", _structured("fine", 1).value)

    stats = consume_until_caught_up(probe_context)

    letters = {d.key: d for d in DeadLetter.objects.filter(consumer_group=group_id(probe_context))}
    assert set(letters) == {"bad-json", "no-story", "no-data"}
    assert all(d.reason == DeadLetterReason.INVALID_RECORD for d in letters.values())
    assert letters["bad-json"].error.startswith("structured CloudEvent is not JSON")
    assert letters["no-story"].error == "missing CloudEvents attributes: correlationid"
    assert letters["no-data"].error == "structured CloudEvent has no data"
    assert applied(probe_context, "fine") == [1]
    assert (stats.handled, stats.dead_lettered) == (1, 3)
