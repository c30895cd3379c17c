"""`manage.py relay` as a real process: wake-ups, shutdown, fail-over, the crash window."""

import json
import signal
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from backbone.failpoints import EXIT_CODE
from backbone.testing import database_url, read_topic
from outbox.leader import AnotherLeader
from outbox.models import OutboxRecord

from .conftest import (
    RelayStarter,
    admin_connection,
    emit_steps,
    process_env,
    publish_once,
    wait_for_published,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("kafka_topics"),
    pytest.mark.e2e,
]


def steps_by_key(records: list, key: str) -> list[int]:
    return [json.loads(record.value)["step"] for record in records if record.key == key]


def test_commits_wake_the_relay_without_polling(probe, start_relay: RelayStarter):
    relay = start_relay("--poll-interval", "3600")  # the safety net never fires in this test
    relay.wait_for_log("is now the leader")

    keys = [str(uuid.uuid4()) for _ in range(3)]
    for key in keys:  # one at a time: each commit must wake the sleeping relay
        emit_steps(probe, key, [1])
        wait_for_published({key})

    assert len(read_topic("orders", keys=set(keys), at_least=3)) == 3
    assert relay.running


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_relay_cleanly_and_frees_the_leader_lock(probe, start_relay: RelayStarter, signum):
    relay = start_relay(env=process_env(RELAY_STATUS_INTERVAL_SECONDS="0.1"))
    relay.wait_for_log("is now the leader")
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(3))
    wait_for_published({key})
    relay.wait_for_log("relay status: published 3 rows in the last")

    assert relay.stop(signum) == 0

    log = relay.log()
    assert f"{signal.Signals(signum).name}: finishing the current batch, then stopping" in log
    assert "relay stopped; published 3 rows" in log
    assert "Traceback" not in log
    publish_once()  # would raise AnotherLeader if the lock were still held


def test_once_refuses_in_one_line_while_another_relay_leads(start_relay: RelayStarter):
    leader = start_relay()
    leader.wait_for_log("is now the leader")

    once = start_relay("--once", name="once")

    assert once.process.wait(timeout=60) == 1
    assert "CommandError: another relay is the leader" in once.log()
    assert "Traceback" not in once.log()
    with pytest.raises(AnotherLeader):
        publish_once()


def test_without_postgresql_the_relay_exits_with_one_line():
    env = process_env(DATABASE_URL="postgres://shop:shop@127.0.0.1:9/shop")  # nothing listens there
    result = subprocess.run(
        [sys.executable, "manage.py", "relay"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: PostgreSQL is not reachable at 127.0.0.1:9")


def test_an_unmigrated_database_is_named_in_one_line(start_relay: RelayStarter):
    name = f"test_shop_relay_empty_{uuid.uuid4().hex[:8]}"
    with admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env = process_env(DATABASE_URL=database_url(connection.settings_dict).rsplit("/", 1)[0] + f"/{name}")
        once = start_relay("--once", name="unmigrated", env=env)
        assert once.process.wait(timeout=60) == 1
    finally:
        with admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert f"CommandError: database {name} has no outbox table: run `manage.py migrate`" in once.log()
    assert "Traceback" not in once.log()


def test_a_second_relay_stands_by_and_takes_over_when_the_leader_is_killed(probe, start_relay: RelayStarter):
    first = start_relay(name="first")
    first.wait_for_log("is now the leader")
    second = start_relay(name="second")
    second.wait_for_log("standing by")

    before = str(uuid.uuid4())
    emit_steps(probe, before, range(3))
    wait_for_published({before})
    assert "is now the leader" not in second.log()  # only the leader published

    first.stop(signal.SIGKILL)
    second.wait_for_log("is now the leader", timeout=30)
    after = str(uuid.uuid4())
    emit_steps(probe, after, range(3))
    wait_for_published({after})

    records = read_topic("orders", keys={before, after}, at_least=6)
    assert steps_by_key(records, before) == [0, 1, 2]
    assert steps_by_key(records, after) == [0, 1, 2]
    assert second.running


def test_a_crash_between_delivery_and_marking_republishes_the_same_events(probe, start_relay: RelayStarter):
    key = str(uuid.uuid4())
    event_ids = emit_steps(probe, key, range(4))

    crashing = start_relay(
        "--once", name="crashing", env=process_env(BACKBONE_FAILPOINTS="relay.after-delivery")
    )

    assert crashing.process.wait(timeout=60) == EXIT_CODE
    assert [r.event_id for r in read_topic("orders", keys={key}, at_least=4)] == event_ids
    assert OutboxRecord.objects.filter(key=key, published_at__isnull=True).count() == 4  # not marked

    restarted = start_relay("--once", name="restarted")
    assert restarted.process.wait(timeout=60) == 0

    records = read_topic("orders", keys={key}, at_least=8)
    assert Counter(record.event_id for record in records) == dict.fromkeys(event_ids, 2)  # duplicates ...
    assert [r.event_id for r in records] == event_ids + event_ids  # ... each copy in order
    assert not OutboxRecord.objects.filter(key=key, published_at__isnull=True).exists()
