"""PostgreSQL restarts or fails over under a running `manage.py consume`: it waits and carries on.

A restart or failover terminates every session. The tests do the same to the consumer's
session only (selected by database and application name, so nothing outside this test
database is touched); the second one also refuses new connections to the test database for a
while, so the consumer really has to wait for PostgreSQL to come back.
"""

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest
from django.db import connection

from backbone.kafka import group_id
from backbone.models import DeadLetter
from backbone.testing import LoggedProcess, wait_for
from backbone.tests.consumer_probe import (
    SLOW_PREFIX,
    ProbeApplied,
    ProbeRecorded,
    consume_command,
    send_event,
    subprocess_env,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


class ConsumerProcess(LoggedProcess):
    """A running `manage.py consume` whose PostgreSQL sessions carry a name of their own."""

    def __init__(self, context: str) -> None:
        self.context = context
        self.application_name = f"consume-{context}"
        # libpq names the consumer's sessions, so the test can find them in pg_stat_activity.
        super().__init__(
            consume_command(context), env=subprocess_env(context, PGAPPNAME=self.application_name)
        )


@pytest.fixture
def consumer(probe_context: str) -> Iterator[ConsumerProcess]:
    process = ConsumerProcess(probe_context)
    try:
        yield process
    finally:
        process.stop()


def consumer_sessions(application_name: str, *, running: str = "") -> list[int]:
    """The backends of the consumer on this test database (optionally: running `running`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND pid <> pg_backend_pid() AND query LIKE %s",
            [application_name, f"%{running}%"],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate(pids: list[int]) -> None:
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


@contextmanager
def connections_refused() -> Iterator[None]:
    """New sessions on the test database fail, as while PostgreSQL restarts; open ones stay.

    PostgreSQL refuses to change this from a session of the database itself: Django's
    maintenance connection (to the `postgres` database) does it.
    """
    name = connection.ops.quote_name(connection.settings_dict["NAME"])
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
    try:
        yield
    finally:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")


def send_probes(key: str, seqs: range) -> None:
    for seq in seqs:
        send_event(ProbeRecorded(probe_key=key, seq=seq, amount=1), flush=seq == seqs[-1], partition=0)


def applied_once(context: str, expected: int) -> bool:
    event_ids = ProbeApplied.objects.filter(context=context).values_list("event_id", flat=True)
    counts = Counter(event_ids)
    assert all(count == 1 for count in counts.values()), f"applied twice: {counts.most_common(3)}"
    return len(counts) == expected


def test_a_consumer_whose_session_was_terminated_reconnects_and_applies_everything_once(
    probe_context: str, consumer: ConsumerProcess
) -> None:
    send_probes("before", range(1, 4))
    wait_for(lambda: applied_once(probe_context, 3), timeout=60, what="the first 3 events")
    pids = wait_for(lambda: consumer_sessions(consumer.application_name), what="the consumer's session")

    terminate(pids)  # what a restart or failover does to every session
    send_probes("after", range(1, 6))

    wait_for(lambda: applied_once(probe_context, 8), timeout=60, what="the 5 events sent after")
    assert consumer.alive(), consumer.log
    wait_for(lambda: "PostgreSQL is back" in consumer.log, what="the recovery line")
    assert f"{probe_context}: PostgreSQL unavailable (" in consumer.log
    assert "Traceback" not in consumer.log
    assert not DeadLetter.objects.filter(consumer_group=group_id(probe_context)).exists()


@pytest.mark.parametrize("refused", [False, True], ids=["session-terminated", "postgresql-away"])
def test_a_batch_cut_off_mid_way_is_rolled_back_and_applied_once_when_postgresql_is_back(
    probe_context: str, consumer: ConsumerProcess, refused: bool
) -> None:
    # One batch: three events, one whose handler sleeps in PostgreSQL, three more.
    send_probes("first", range(1, 4))
    send_probes(f"{SLOW_PREFIX}key", range(1, 2))
    send_probes("last", range(1, 4))
    pids = wait_for(
        lambda: consumer_sessions(consumer.application_name, running="pg_sleep"),
        timeout=60,
        what="the consumer to be in the middle of its batch",
    )

    with connections_refused() if refused else nullcontext():
        terminate(pids)  # the three events before it are applied, not committed: rolled back
        wait_for(lambda: "PostgreSQL unavailable" in consumer.log, what="the outage line")
        if refused:
            time.sleep(1.5)  # a reconnection attempt or two fail meanwhile
            assert consumer.alive(), consumer.log
            assert not ProbeApplied.objects.filter(context=probe_context).exists()

    wait_for(lambda: applied_once(probe_context, 7), timeout=60, what="the whole batch")
    wait_for(lambda: "PostgreSQL is back" in consumer.log, what="the recovery line")
    assert consumer.alive(), consumer.log
    log = consumer.log
    assert "7 record(s) rolled back, applying them again" in log
    # The database was away, the handler did not fail: no handler retry, no dead letter.
    assert "failed (attempt" not in log
    assert not DeadLetter.objects.filter(consumer_group=group_id(probe_context)).exists()
