"""The outbox admin: read-only, filterable by published state, searchable by the ids people have."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from outbox.models import OutboxRecord

from .conftest import emit_steps

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:outbox_outboxrecord_changelist"


@pytest.fixture
def rows(probe) -> dict[str, OutboxRecord]:
    keys = {"waiting": str(uuid.uuid4()), "published": str(uuid.uuid4())}
    for key in keys.values():
        emit_steps(probe, key, [1])
    OutboxRecord.objects.filter(key=keys["published"]).update(
        published_at=timezone.now(), kafka_partition=1, kafka_offset=42
    )
    return {name: OutboxRecord.objects.get(key=key) for name, key in keys.items()}


def listed(admin_client, **params: str) -> set[int]:
    response = admin_client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


def test_the_list_filters_by_published_state(admin_client, rows):
    assert listed(admin_client) == {rows["waiting"].pk, rows["published"].pk}
    assert listed(admin_client, published="no") == {rows["waiting"].pk}
    assert listed(admin_client, published="yes") == {rows["published"].pk}


def test_the_list_filters_by_type_topic_and_date(admin_client, rows):
    today = timezone.now()
    assert len(listed(admin_client, event_type="orders.RelayProbe", topic="orders")) == 2
    assert listed(admin_client, event_type="orders.Nothing") == set()
    assert len(listed(admin_client, occurred_at__year=str(today.year))) == 2


@pytest.mark.parametrize("field", ["event_id", "key", "correlation_id"])
def test_search_finds_a_row_by_its_exact_ids(admin_client, rows, field):
    target = rows["published"]
    assert listed(admin_client, q=str(getattr(target, field))) == {target.pk}
    assert listed(admin_client, q="not-an-id") == set()


def test_records_can_be_viewed_but_not_added_changed_or_deleted(admin_client, rows):
    row = rows["published"]
    change_url = reverse("admin:outbox_outboxrecord_change", args=[row.pk])

    page = admin_client.get(change_url)

    assert page.status_code == 200
    assert str(row.event_id) in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:outbox_outboxrecord_add")).status_code == 403
    assert admin_client.post(change_url, {"key": "tampered"}).status_code == 403
    delete_url = reverse("admin:outbox_outboxrecord_delete", args=[row.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert OutboxRecord.objects.get(pk=row.pk).key == row.key
