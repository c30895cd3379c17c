"""The leader's fencing check costs no transaction: it runs before every window the relay
publishes, so a `SELECT 1` there was a commit per wake-up (docs/relay.md)."""

import pytest

from backbone.testing.commits import server_commits
from outbox.leader import LeaderLock, LeadershipLost
from outbox.relay import database_connector
from outbox.shards import RelayLayout, Shard, ShardLock

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connect(django_db_setup):  # the test database must exist first
    from django.db import connection

    return database_connector(connection.settings_dict)


def test_verifying_the_leader_lock_commits_nothing_and_still_sees_an_ended_session(connect) -> None:
    lock = LeaderLock(connect)
    assert lock.try_acquire()
    with connect() as monitor:
        commits = server_commits(
            [lock.session()], lambda: [lock.verify() for _ in range(20)], monitor=monitor
        )
        assert commits <= 2, commits  # the monitor's own reads may be flushed meanwhile
        monitor.execute("SELECT pg_terminate_backend(%s)", (lock.session().info.backend_pid,))
    with pytest.raises(LeadershipLost):
        lock.verify()
    lock.release()


def test_verifying_a_shard_lock_and_its_layout_commits_nothing(connect) -> None:
    layout = RelayLayout(connect, 1)
    layout.join()
    lock = ShardLock(connect, Shard(0, 1), layout)
    try:
        assert lock.try_acquire()
        with connect() as monitor:
            commits = server_commits(
                [lock.session(), layout._connection],
                lambda: [lock.verify() for _ in range(20)],
                monitor=monitor,
            )
            assert commits <= 2, commits
    finally:
        lock.release()
        layout.leave()
