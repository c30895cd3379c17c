"""Which keys are blocked: a pending dead letter blocks its (topic, key) for its group, and so
does a record waiting for a scheduled retry (status `retrying`, see retry.py).

Consumers read the pending dead letters of their group under a shared advisory lock that
replay and discard take exclusively, so a record is never parked behind a dead letter that
is being released (it would be stranded) nor applied before the followers being released.
A redelivered record that already is a pending dead letter (same position, same ce_id) is
recognised here and skipped; another record at that position (a recreated topic) is not.
"""

from dataclasses import dataclass, field

from django.db import connection

from ..records import ConsumedRecord

_LOCK = "SELECT {function}(hashtextextended(%s, 0))"
_PENDING = """
    SELECT id, topic, key, partition, "offset", record_id FROM dead_letter
    WHERE consumer_group = %s AND status IN ('pending', 'retrying')
"""
_SHARED_LOCK = _LOCK.format(function="pg_advisory_xact_lock_shared")


def _lock_key(group: str) -> str:
    return f"backbone.dead_letters:{group}"


def lock_group(group: str, *, exclusive: bool) -> None:
    """Transaction-scoped: consumers share it per batch, replay and discard hold it alone."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(_LOCK.format(function=function), [_lock_key(group)])


@dataclass
class KeyGate:
    """The pending dead letters of one group, as of this transaction."""

    blocked: dict[tuple[str, str], int] = field(default_factory=dict)
    # position -> identities of the dead letters there (a recreated topic reuses positions)
    dead_records: dict[tuple[str, int, int], set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, group: str) -> "KeyGate":
        gate = cls()
        # The shared lock and the read in one round trip (every batch of every consumer starts
        # with them), as two statements: in READ COMMITTED the second takes its snapshot after
        # the first was granted the lock, so it sees what a replay that held the lock committed.
        # A pipeline sends both at once; one string of two statements would not do, as
        # parameters bound on the server allow one statement per string.
        with connection.cursor() as cursor:
            with connection.connection.pipeline():
                cursor.execute(_SHARED_LOCK, [_lock_key(group)])
                cursor.execute(_PENDING, [group])
            for dead_letter_id, topic, key, partition, offset, record_id in cursor.fetchall():
                gate.dead_records.setdefault((topic, partition, offset), set()).add(record_id)
                if key is not None:
                    gate.blocked[(topic, key)] = dead_letter_id
        return gate

    def blocker(self, record: ConsumedRecord) -> int | None:
        """The dead letter a record must wait behind, if its key is blocked."""
        if record.key is None:
            return None
        return self.blocked.get((record.topic, record.key))

    def is_dead_letter(self, record: ConsumedRecord) -> bool:
        """A redelivery of a record that is already a pending dead letter: the same position
        and the same record (its ce_id); another record at that position is not skipped."""
        identities = self.dead_records.get(record.position)
        return identities is not None and record.identity in identities

    def block(self, record: ConsumedRecord, dead_letter_id: int) -> None:
        self.dead_records.setdefault(record.position, set()).add(record.identity)
        if record.key is not None:
            self.blocked[(record.topic, record.key)] = dead_letter_id
