"""Dead-letter operations at scale: the admin's date and text search, bulk replay and discard
by filter at a rate, and payloads edited (validated, audited) before they are replayed."""

import json
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterEdit, DeadLetterReason, DeadLetterStatus
from backbone.testing import envelope_for
from backbone.tests.consumer_probe import (
    ProbeBroken,
    ProbeRecorded,
    ProbeShipped,
    applied,
    consume_until_caught_up,
    send,
    send_event,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _run(*args: str) -> str:
    out = StringIO()
    call_command("deadletters", *args, stdout=out, stderr=out)
    return out.getvalue()


def _dead_letters(context: str, events: list[ProbeRecorded | ProbeShipped]) -> dict[str, DeadLetter]:
    """One dead letter per event: their keys are broken, the runner tries each once."""
    ProbeBroken.objects.bulk_create(ProbeBroken(probe_key=event.probe_key) for event in events)
    for event in events:
        send_event(event, flush=False)
    send_event(ProbeRecorded(probe_key="flush-marker", seq=1))
    consume_until_caught_up(context, max_attempts=1)
    letters = DeadLetter.objects.filter(consumer_group=group_id(context))
    return {letter.key or "": letter for letter in letters}


def test_the_admin_finds_dead_letters_by_date_error_text_and_event_type(
    probe_context: str, staff_client: Client
) -> None:
    letters = _dead_letters(
        probe_context, [ProbeRecorded(probe_key="srch-a", seq=1), ProbeShipped(probe_key="srch-b", amount=1)]
    )
    url = "/admin/backbone/deadletter/"

    def listed(**query: str) -> set[int]:
        response = staff_client.get(url, query)
        assert response.status_code == 200, response.content[:500]
        return {pk for pk in (letter.pk for letter in letters.values()) if f"/{pk}/change/" in response.text}

    everything = {letter.pk for letter in letters.values()}
    assert listed(q="broken for srch-a") == {letters["srch-a"].pk}  # the error text, by substring
    assert listed(q="ProbeShipped") == {letters["srch-b"].pk}  # the event type, by substring
    assert listed(q="no such error anywhere") == set()
    page = staff_client.get(url).text
    assert 'class="toplinks"' in page or "xfull" in page  # the date hierarchy's links
    today = timezone.localdate()
    same_day = {"created_at__year": str(today.year), "created_at__month": str(today.month)}
    assert listed(**same_day, created_at__day=str(today.day)) == everything
    assert listed(created_at__year=str(today.year - 1)) == set()


def test_bulk_replay_and_discard_by_filter_at_a_rate_with_a_dry_run(probe_context: str) -> None:
    before = timezone.now() - timedelta(seconds=1)
    letters = _dead_letters(
        probe_context,
        [
            ProbeRecorded(probe_key="bulk-1", seq=1),
            ProbeRecorded(probe_key="bulk-2", seq=1),
            ProbeRecorded(probe_key="bulk-3", seq=1),
            ProbeShipped(probe_key="bulk-4", amount=1),
        ],
    )
    ProbeBroken.objects.all().delete()  # the fix is deployed
    filters = ["--context", probe_context, "--type", "orders.ProbeRecorded"]

    preview = _run("replay", *filters, "--dry-run")
    assert preview.count("would be replayed: #") == 3
    assert "dry run: 3 pending dead letter(s) would be replayed" in preview
    assert DeadLetter.objects.filter(consumer_group=group_id(probe_context), status="pending").count() == 4

    # Nothing created before yesterday ended: the time range excludes them all.
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert "replayed 0 of 0" in _run("replay", *filters, "--until", yesterday)

    started = time.monotonic()
    output = _run(
        "replay", *filters, "--reason", "handler_failed", "--since", before.isoformat(), "--rate", "4"
    )
    elapsed = time.monotonic() - started

    assert elapsed >= 0.5  # three at 4 per second: the third starts 0.5 s after the first
    oldest_first = sorted(letters[key].pk for key in ("bulk-1", "bulk-2", "bulk-3"))
    for index, pk in enumerate(oldest_first, start=1):
        assert f"[{index}/3] #{pk} replayed" in output
    assert [applied(probe_context, f"bulk-{n}") for n in (1, 2, 3, 4)] == [[1], [1], [1], []]
    assert "replayed 3 of 3 dead letter(s)" in output
    assert "0 failed" in output
    assert DeadLetter.objects.get(pk=letters["bulk-4"].pk).status == DeadLetterStatus.PENDING

    output = _run("discard", "--context", probe_context, "--since", before.isoformat())
    assert f"[1/1] #{letters['bulk-4'].pk} discarded" in output
    assert DeadLetter.objects.get(pk=letters["bulk-4"].pk).status == DeadLetterStatus.DISCARDED
    with pytest.raises(CommandError, match="give dead-letter ids, or a filter"):
        _run("replay")


def test_a_bulk_replay_reports_what_failed_and_goes_on(probe_context: str) -> None:
    letters = _dead_letters(
        probe_context,
        [ProbeRecorded(probe_key="mixed-ok", seq=1), ProbeRecorded(probe_key="mixed-bad", seq=1)],
    )
    ProbeBroken.objects.filter(probe_key="mixed-ok").delete()
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 2 dead letter"):
        call_command(
            "deadletters", "replay", "--context", probe_context, "--rate", "100", stdout=out, stderr=out
        )
    assert (
        f"#{letters['mixed-bad'].pk} not replayed: dead letter #{letters['mixed-bad'].pk} failed again"
        in (out.getvalue())
    )
    assert "replayed 1 of 2 dead letter(s)" in out.getvalue()
    assert applied(probe_context, "mixed-ok") == [1]


def _invalid_dead_letter(context: str, key: str) -> DeadLetter:
    """A record its producer got wrong: `seq` is not a number, so it is dead-lettered at once."""
    headers = envelope_for(ProbeRecorded(probe_key=key, seq=1)).headers()
    send("orders", key=key, value=json.dumps({"probe_key": key, "seq": "one"}).encode(), headers=headers)
    consume_until_caught_up(context)
    letter = DeadLetter.objects.get(consumer_group=group_id(context), key=key)
    assert letter.reason == DeadLetterReason.INVALID_RECORD
    return letter


def test_an_edited_payload_is_validated_audited_and_replayed(probe_context: str, tmp_path: Path) -> None:
    letter = _invalid_dead_letter(probe_context, "edit-me")
    consumed = bytes(letter.value)

    with pytest.raises(CommandError, match=r"edit refused: orders\.ProbeRecorded v2: amount: .*integer"):
        _run("edit", str(letter.pk), "--set", "seq=3", "--set", "amount=lots", "--by", "alice")
    with pytest.raises(CommandError, match=r"edit refused: .*colour: Extra inputs are not permitted"):
        _run("edit", str(letter.pk), "--set", "seq=3", "--set", "colour=red")
    with pytest.raises(CommandError, match="field probe_key is the record's key"):
        _run("edit", str(letter.pk), "--set", "seq=3", "--set", "probe_key=someone-else")
    letter.refresh_from_db()
    assert bytes(letter.value) == consumed
    assert letter.original_value is None
    assert not DeadLetterEdit.objects.filter(dead_letter=letter).exists()

    output = _run("edit", str(letter.pk), "--set", "seq=3", "--by", "alice")
    assert "edited by alice (seq: 'one' -> 3)" in output
    whole = tmp_path / "fixed.json"
    whole.write_text(json.dumps({"probe_key": "edit-me", "seq": 4, "amount": 7}))
    _run("edit", str(letter.pk), "--payload-file", str(whole), "--by", "bob")

    letter.refresh_from_db()
    assert bytes(letter.original_value) == consumed  # the value as consumed, kept once
    edits = list(DeadLetterEdit.objects.filter(dead_letter=letter).order_by("id"))
    assert [(edit.edited_by, edit.changes) for edit in edits] == [
        ("alice", {"seq": ["one", 3]}),
        ("bob", {"seq": [3, 4], "amount": [None, 7]}),
    ]
    assert bytes(edits[0].previous_value) == consumed
    assert edits[0].edited_at <= edits[1].edited_at
    shown = _run("show", str(letter.pk))
    assert '"seq": "one"' in shown or '"seq":"one"' in shown
    assert "by alice" in shown
    assert "by bob" in shown

    assert "replayed" in _run("replay", str(letter.pk))
    assert applied(probe_context, "edit-me") == [4]
    with pytest.raises(CommandError, match="already replayed"):
        _run("edit", str(letter.pk), "--set", "seq=5")


def test_the_admin_shows_the_original_payload_and_its_edits(probe_context: str, staff_client: Client) -> None:
    letter = _invalid_dead_letter(probe_context, "edit-admin")
    _run("edit", str(letter.pk), "--set", "seq=2", "--by", "carol")

    page = staff_client.get(f"/admin/backbone/deadletter/{letter.pk}/change/").text

    assert "Value as consumed (before edits)" in page
    assert "&quot;seq&quot;: &quot;one&quot;" in page
    assert "carol" in page
