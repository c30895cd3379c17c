"""`manage.py deadletters list|show|replay|discard` and the admin's dead-letter actions."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterStatus
from backbone.tests.consumer_probe import (
    ProbeBroken,
    ProbeRecorded,
    applied,
    consume_until_caught_up,
    send_event,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _dead_letter_with_a_parked_follower(context: str, key: str) -> DeadLetter:
    ProbeBroken.objects.create(probe_key=key)
    cause = send_event(ProbeRecorded(probe_key=key, seq=1), correlation_id=f"corr-{key}", flush=False)
    send_event(ProbeRecorded(probe_key=key, seq=2))
    consume_until_caught_up(context, max_attempts=1)
    dead_letter = DeadLetter.objects.get(consumer_group=group_id(context), key=key)
    assert dead_letter.event_id == cause.id
    return dead_letter


def _run(*args: str) -> str:
    out = StringIO()
    call_command("deadletters", *args, stdout=out)
    return out.getvalue()


def test_list_show_replay_and_discard_from_the_command_line(probe_context: str) -> None:
    dead_letter = _dead_letter_with_a_parked_follower(probe_context, "cli")

    listing = _run("list", "--context", probe_context)
    assert f"{dead_letter.pk:>6}  pending" in listing
    assert "orders.ProbeRecorded" in listing
    assert "ProbeHandlerBroken: the probe handler is broken for cli" in listing

    shown = _run("show", str(dead_letter.pk))
    assert "correlation  corr-cli" in shown
    assert f"ce_id: {dead_letter.event_id}" in shown
    assert '"probe_key":"cli"' in shown
    assert "parked       1" in shown
    assert "Traceback" in shown  # the full error is kept for whoever fixes the bug

    with pytest.raises(CommandError, match="failed again: ProbeHandlerBroken"):
        _run("replay", str(dead_letter.pk))
    ProbeBroken.objects.filter(probe_key="cli").delete()
    assert "replayed; 1 parked record(s) applied" in _run("replay", str(dead_letter.pk))
    assert applied(probe_context, "cli") == [1, 2]

    with pytest.raises(CommandError, match="already replayed"):
        _run("discard", str(dead_letter.pk))
    assert "no pending dead letters" in _run("list", "--context", probe_context)
    assert "replayed" in _run("list", "--context", probe_context, "--status", "all")
    with pytest.raises(CommandError, match="no dead letter #999999"):
        _run("show", "999999")


def test_the_admin_lists_filters_shows_and_discards_dead_letters(
    probe_context: str, staff_client: Client
) -> None:
    dead_letter = _dead_letter_with_a_parked_follower(probe_context, "admin")
    ProbeBroken.objects.filter(probe_key="admin").delete()

    listing = staff_client.get(
        "/admin/backbone/deadletter/", {"status__exact": "pending", "context": probe_context}
    )
    assert listing.status_code == 200
    assert "ProbeHandlerBroken" in listing.content.decode()
    detail = staff_client.get(f"/admin/backbone/deadletter/{dead_letter.pk}/change/")
    assert detail.status_code == 200
    assert "corr-admin" in detail.content.decode()

    response = staff_client.post(
        "/admin/backbone/deadletter/",
        {"action": "discard_selected", "_selected_action": [str(dead_letter.pk)]},
        follow=True,
    )

    assert f"Dead letter #{dead_letter.pk} discarded" in response.content.decode()
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.DISCARDED
    assert applied(probe_context, "admin") == [2]


def test_the_admin_replays_and_the_inbox_is_searchable(probe_context: str, staff_client: Client) -> None:
    dead_letter = _dead_letter_with_a_parked_follower(probe_context, "admin-replay")
    ProbeBroken.objects.filter(probe_key="admin-replay").delete()

    staff_client.post(
        "/admin/backbone/deadletter/",
        {"action": "replay_selected", "_selected_action": [str(dead_letter.pk)]},
    )

    assert applied(probe_context, "admin-replay") == [1, 2]
    inbox = staff_client.get("/admin/backbone/inboxentry/", {"q": "corr-admin-replay"})
    assert inbox.status_code == 200
    assert inbox.content.decode().count(dead_letter.event_id) == 1
    assert staff_client.get("/admin/backbone/parkedrecord/").status_code == 200
