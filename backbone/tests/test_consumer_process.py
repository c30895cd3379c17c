"""The real `manage.py consume` process: crashes, signals, the dead-letter limit, missing services."""

import signal
import subprocess
import sys
import threading
from collections import Counter

import pytest
from django.conf import settings
from django.db import transaction

from backbone.correlation import correlation_scope
from backbone.failpoints import EXIT_CODE
from backbone.kafka import group_id
from backbone.models import DeadLetter, InboxEntry
from backbone.testing import wait_for
from backbone.tests.consumer_probe import (
    ProbeApplied,
    ProbeRecorded,
    ProbeView,
    applied,
    committed_offsets,
    consume_command,
    consume_until_caught_up,
    end_offsets,
    run_consume,
    send,
    send_event,
    subprocess_env,
)
from outbox.emit import emit
from outbox.models import OutboxRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _send_probes(keys: int, per_key: int) -> None:
    for seq in range(1, per_key + 1):
        for key in range(keys):
            send_event(ProbeRecorded(probe_key=f"key-{key}", seq=seq, amount=1), flush=False)
    send_event(ProbeRecorded(probe_key="last", seq=1, amount=1))


def test_a_consumer_killed_between_database_commit_and_offset_commit_changes_nothing_on_restart(
    probe_context: str,
) -> None:
    _send_probes(keys=5, per_key=6)
    ends = end_offsets("orders")

    crashed = run_consume(probe_context, "--once", BACKBONE_FAILPOINTS="consumer.after-db-commit")

    assert crashed.returncode == EXIT_CODE, crashed.stderr
    assert "failpoint consumer.after-db-commit reached" in crashed.stderr
    applied_before = ProbeApplied.objects.filter(context=probe_context).count()
    assert applied_before > 0  # the database transaction did commit
    assert committed_offsets(group_id(probe_context), "orders") != ends  # the offsets did not

    restarted = run_consume(probe_context, "--once")

    assert restarted.returncode == 0, restarted.stderr
    assert f"duplicates {applied_before}," in restarted.stderr  # redelivered, found in the inbox
    rows = ProbeApplied.objects.filter(context=probe_context)
    assert Counter(rows.values_list("event_id", flat=True)).most_common(1)[0][1] == 1
    assert rows.count() == 31
    assert all(
        view.total == 6
        for view in ProbeView.objects.filter(context=probe_context, probe_key__startswith="key-")
    )
    assert committed_offsets(group_id(probe_context), "orders") == ends


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(probe_context: str) -> None:
    process = subprocess.Popen(
        consume_command(probe_context, "--status-interval", "1"),
        cwd=settings.BASE_DIR,
        env=subprocess_env(probe_context),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        _send_probes(keys=3, per_key=3)
        ends = end_offsets("orders")
        wait_for(
            lambda: InboxEntry.objects.filter(consumer_group=group_id(probe_context)).count() == 10,
            timeout=60,
            what="the consumer to handle 10 events",
        )
        wait_for(lambda: any("records/s;" in line for line in lines), what="a status line")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(lines)

    assert process.returncode == 0, stderr
    assert "stopping after the current batch" in stderr
    assert f"consume {probe_context}: group {group_id(probe_context)}, topics orders, shipments" in stderr
    assert "handled 10, duplicates 0" in stderr
    assert "Traceback" not in stderr
    assert committed_offsets(group_id(probe_context), "orders") == ends


def test_the_dead_letter_limit_stops_the_process_with_one_clear_error_line(probe_context: str) -> None:
    for number in range(4):
        send("orders", key=f"junk-{number}", value=b"junk", headers=[], partition=0, flush=number == 3)

    result = run_consume(probe_context, "--once", "--dead-letter-limit", "2")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"CommandError: consumer {probe_context} stopped: more than 2 dead letters")
    assert DeadLetter.objects.filter(consumer_group=group_id(probe_context)).count() == 2


def test_duplicates_from_a_relay_killed_after_delivery_are_applied_once(probe_context: str) -> None:
    with correlation_scope("relayed-twice"), transaction.atomic():
        for seq in range(1, 6):
            emit(ProbeRecorded(probe_key="relayed", seq=seq, amount=seq))

    def relay(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "relay", "--once"],
            cwd=settings.BASE_DIR,
            env=subprocess_env(probe_context, **env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    crashed = relay(BACKBONE_FAILPOINTS="relay.after-delivery")  # on Kafka, not marked published
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    # The consumer handles the first copies before the relay is back: the copies that follow
    # reach a later run, which only the inbox table can tell they were handled.
    first = consume_until_caught_up(probe_context)
    assert (first.handled, first.duplicates) == (5, 0)
    restarted = relay()  # publishes the same five events again
    assert restarted.returncode == 0, restarted.stderr
    assert not OutboxRecord.objects.filter(key="relayed", published_at=None).exists()

    again = consume_until_caught_up(probe_context)

    assert (again.handled, again.duplicates) == (0, 5)
    assert applied(probe_context, "relayed") == [1, 2, 3, 4, 5]
    assert ProbeView.objects.get(context=probe_context, probe_key="relayed").total == 15


def _assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_a_missing_kafka_is_one_line(probe_context: str) -> None:
    result = run_consume(probe_context, "--once", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")

    _assert_one_line_error(result, "CommandError: Kafka is not reachable at 127.0.0.1:9")


def test_a_context_without_handlers_is_one_line(probe_context: str) -> None:
    result = run_consume("no_such_context", "--once", PROBE_CONTEXTS="")

    _assert_one_line_error(result, "CommandError: context 'no_such_context' has no handlers")
