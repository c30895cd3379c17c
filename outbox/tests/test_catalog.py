"""The admin's event catalog: staff only, every event type with the code's facts and the
outbox's, in two queries whatever the number of types."""

import json
import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse

from backbone.catalog import event_types
from backbone.contracts import registry
from backbone.correlation import correlation_scope
from backbone.kafka import group_id
from backbone.tests.consumer_probe import ProbeRecorded
from outbox.catalog import entries
from outbox.emit import emit
from outbox.tests.conftest import RelayStarter, wait_for_published

pytestmark = pytest.mark.django_db(transaction=True)

# The outbox may not import a context: the event class comes from the registry, as a consumer finds it.
OrderRejected = registry.get("orders.OrderRejected")

URL = "/admin/event-catalog/"


def rejections(count: int) -> tuple[str, list[uuid.UUID]]:
    """`count` OrderRejected of one story, in the outbox (a relay publishes them)."""
    correlation_id = f"catalog-{uuid.uuid4().hex[:8]}"
    order_ids = [uuid.uuid4() for _ in range(count)]
    with correlation_scope(correlation_id), transaction.atomic():
        for order_id in order_ids:
            emit(OrderRejected(order_id=order_id, reason="out_of_stock"))
    return correlation_id, order_ids


@pytest.fixture
def published(
    kafka_topics: list[str], start_relay: RelayStarter
) -> Callable[[int], tuple[str, list[uuid.UUID]]]:
    """Rejections published by `manage.py relay` as the Procfile runs it."""
    start_relay()

    def publish(count: int) -> tuple[str, list[uuid.UUID]]:
        correlation_id, order_ids = rejections(count)
        wait_for_published({str(order_id) for order_id in order_ids})
        return correlation_id, order_ids

    return publish


def test_only_staff_see_the_catalog(client) -> None:
    assert reverse("event-catalog") == URL
    assert client.get(URL).url.startswith("/admin/login/")
    client.force_login(get_user_model().objects.create_user("catalog-customer", password="x"))
    response = client.get(URL)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_staff_see_every_event_type_with_owner_topic_key_and_readers(admin_client) -> None:
    html = admin_client.get(URL).content.decode()

    names = [facts.type_name for facts in event_types()]
    assert len(names) == 12
    for name in names:
        assert f'data-type="{name}"' in html
    assert html.count('class="event-type"') == len(names)
    # Who reads stock levels: the orders group, with its batch handler.
    assert f'data-group="{group_id("orders")}"' in html
    assert "orders.handlers.on_stock_level_changed" in html
    # No row of this type yet: the example is made from the schema.
    assert "made from the schema" in html
    assert reverse("admin:outbox_outboxrecord_changelist") + "?event_type__exact=orders.OrderRejected" in html


@pytest.mark.e2e
def test_counts_last_one_example_and_stories_come_from_the_outbox(admin_client, published) -> None:
    correlation_id, order_ids = published(2)

    entry = next(e for e in entries() if e.type_name == "orders.OrderRejected")
    assert entry.published_last_hour == 2
    assert entry.last_at is not None
    assert entry.example_is_real
    assert json.loads(entry.example)["order_id"] == str(order_ids[-1])  # the newest row's payload
    assert [event.key for event in entry.recent] == [str(order_ids[1]), str(order_ids[0])]
    quiet = next(e for e in entries() if e.type_name == "orders.OrderConfirmed")
    assert (quiet.published_last_hour, quiet.last_at, quiet.example_is_real) == (0, None, False)

    html = admin_client.get(URL).content.decode()
    assert reverse("outbox-story", args=[correlation_id]) in html
    assert "2 published" in html


def test_the_outbox_is_read_in_two_queries_whatever_the_number_of_types(django_assert_num_queries) -> None:
    rejections(1)
    with django_assert_num_queries(2):
        catalog = entries()
    assert len(catalog) == len(event_types())


def test_every_example_made_from_a_schema_is_accepted_by_its_contract() -> None:
    for facts in event_types():
        facts.contract.model_validate(facts.example())


def test_the_versions_read_are_the_current_one_and_those_upcasters_lift_to_it() -> None:
    # ProbeRecorded is at version 2, with an upcaster from 1.
    assert registry.readable_versions(ProbeRecorded.type_name) == [1, 2]
    assert registry.readable_versions("orders.OrderRejected") == [1]
