"""The story picture page: staff only, linked from outbox rows and dead letters, and honest
about a story the outbox no longer holds."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from backbone.correlation import correlation_scope
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus
from outbox.models import OutboxRecord

from .conftest import emit_steps

pytestmark = pytest.mark.django_db


@pytest.fixture
def story_url(probe) -> str:
    correlation_id = f"page-{uuid.uuid4().hex[:8]}"
    with correlation_scope(correlation_id):
        emit_steps(probe, "order-1", [1, 2])
    return reverse("outbox-story", args=[correlation_id])


def test_only_staff_see_a_story(client, story_url) -> None:
    assert client.get(story_url).url.startswith("/admin/login/")

    customer = get_user_model().objects.create_user("customer", password="x")
    client.force_login(customer)
    response = client.get(story_url)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_staff_see_the_events_of_a_story(admin_client, story_url) -> None:
    html = admin_client.get(story_url).content.decode()

    assert html.count('class="event"') == 2
    assert "1. RelayProbe" in html
    assert "orders: not published yet" in html  # no relay ran


def test_a_story_the_outbox_no_longer_holds_says_so(admin_client) -> None:
    response = admin_client.get(reverse("outbox-story", args=["gone-long-ago"]))

    assert response.status_code == 200
    assert "No event of this story is in the outbox" in response.content.decode()


def test_outbox_rows_and_dead_letters_link_to_their_story(admin_client, story_url) -> None:
    row = OutboxRecord.objects.order_by("id").first()
    assert row is not None
    letter = DeadLetter.objects.create(
        consumer_group="g",
        context="stock",
        topic="orders",
        partition=0,
        offset=7,
        record_id=str(row.event_id),
        event_id=str(row.event_id),
        event_type=row.event_type,
        correlation_id=row.correlation_id,
        reason=DeadLetterReason.HANDLER_FAILED,
        error="boom",
    )

    outbox_list = admin_client.get(reverse("admin:outbox_outboxrecord_changelist")).content.decode()
    letter_list = admin_client.get(reverse("admin:backbone_deadletter_changelist")).content.decode()
    letter_page = admin_client.get(reverse("admin:backbone_deadletter_change", args=[letter.pk]))

    assert f'href="{story_url}"' in outbox_list
    assert f'href="{story_url}"' in letter_list
    assert f'href="{story_url}"' in letter_page.content.decode()
    # And the dead letter shows on the picture, in warning colour.
    picture = admin_client.get(story_url).content.decode()
    assert 'class="event warning"' in picture
    assert f"stock: dead letter #{letter.pk}, 1 tries" in picture
    # Replayed, it stays in warning colour and says so: the event did not go through first time.
    DeadLetter.objects.filter(pk=letter.pk).update(status=DeadLetterStatus.REPLAYED)
    picture = admin_client.get(story_url).content.decode()
    assert 'class="event warning"' in picture
    assert f"stock: dead letter #{letter.pk} replayed" in picture
