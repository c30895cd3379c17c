"""`manage.py rebuild_views`: a context's views are rebuilt from its topics."""

import subprocess

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from backbone.kafka import group_id
from backbone.models import InboxEntry
from backbone.testing import terminate, wait_for
from backbone.tests.consumer_probe import (
    ProbeApplied,
    ProbeContextFactory,
    ProbeShipped,
    ProbeView,
    consume_command,
    consume_until_caught_up,
    send_event,
    subprocess_env,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _totals(context: str, keys: set[str] | None = None) -> dict[str, int]:
    views = ProbeView.objects.filter(context=context)
    if keys is not None:
        views = views.filter(probe_key__in=keys)
    return dict(views.values_list("probe_key", "total"))


def test_rebuild_views_replays_the_topics_into_emptied_views(make_probe_context: ProbeContextFactory) -> None:
    # Subscribed to `shipments` only. Replayed from the start, the topic also holds what other
    # tests of this session sent earlier (the replay applies those too), so the checks are on
    # this test's keys, unique to its context.
    context = make_probe_context(events=(ProbeShipped,))
    r1, r2, r3 = (f"{context}-{name}" for name in ("r1", "r2", "r3"))
    mine = {r1, r2, r3}
    for key, amount in ((r1, 5), (r1, 7), (r2, 1)):
        send_event(ProbeShipped(probe_key=key, amount=amount), flush=False)
    send_event(ProbeShipped(probe_key=r3, amount=2))
    consume_until_caught_up(context)
    assert _totals(context) == {r1: 12, r2: 1, r3: 2}
    ProbeView.objects.filter(context=context, probe_key=r1).update(total=999)  # a view gone wrong
    ProbeView.objects.filter(context=context, probe_key=r3).delete()

    call_command("rebuild_views", context, "--noinput", "--replay")

    assert _totals(context, mine) == {r1: 12, r2: 1, r3: 2}
    # Every event was applied once more (the handler's log is not a rebuildable view).
    assert ProbeApplied.objects.filter(context=context, probe_key__in=mine).count() == 8
    assert InboxEntry.objects.filter(consumer_group=group_id(context), key__in=mine).count() == 4


def test_rebuild_views_refuses_while_the_context_consumes(make_probe_context: ProbeContextFactory) -> None:
    context = make_probe_context(events=(ProbeShipped,))
    process = subprocess.Popen(
        consume_command(context),
        cwd=settings.BASE_DIR,
        env=subprocess_env(context),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        send_event(ProbeShipped(probe_key="busy", amount=1))
        wait_for(
            lambda: ProbeApplied.objects.filter(context=context).exists(), timeout=60, what="the consumer"
        )

        with pytest.raises(CommandError, match=f"stop the `manage.py consume {context}` process"):
            call_command("rebuild_views", context, "--noinput")
    finally:
        terminate(process, grace=60)
    assert _totals(context) == {"busy": 1}  # nothing was emptied


def test_rebuild_views_needs_declared_views() -> None:
    with pytest.raises(CommandError, match="context 'nobody' has no handlers"):
        call_command("rebuild_views", "nobody", "--noinput")
