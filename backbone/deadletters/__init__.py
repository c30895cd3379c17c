"""Dead letters: records a consumer group could not handle, kept until replayed or discarded.

A dead letter blocks its key for its group: later records of the same (topic, key) are parked
behind it, so one aggregate's events never apply out of order, while other keys keep
flowing. `replay()` applies the dead letter and then its parked followers in their original
order; `discard()` drops the dead letter and applies the followers. A follower that fails on
release becomes the new dead letter and the rest stay parked behind it.

Consumers read the pending dead letters of their group under a shared advisory lock that
replay and discard take exclusively, so a record is never parked behind a dead letter that
is being released (it would be stranded) nor applied before the followers being released.

Split by role: gate.py (which keys are blocked, the group lock), store.py (writing dead
letters and parked records), publisher.py (the `<topic>.dlq` copies), replay.py (replay and
discard), retry.py (failed records waiting for a scheduled retry), edit.py (a payload fixed
before replay, validated and audited), errors.py.
"""

from .edit import apply_assignments, current_payload, edit_payload, parse_assignment
from .errors import DeadLetterError, DeadLetterPublishError, ReplayFailed, describe_failure, summary
from .gate import KeyGate, lock_group
from .publisher import (
    HEADER_PREFIX,
    DeadLetterPublisher,
    KafkaDeadLetterPublisher,
    copy_for_topic,
    dead_letter_topic,
)
from .replay import PublisherFactory, Release, discard, replay, replay_known_versions
from .retry import RetryOutcome, has_retries, next_retry_at, retry_due
from .store import note_refused_copies, park, write_dead_letter

__all__ = [
    "HEADER_PREFIX",
    "DeadLetterError",
    "DeadLetterPublishError",
    "DeadLetterPublisher",
    "KafkaDeadLetterPublisher",
    "KeyGate",
    "PublisherFactory",
    "Release",
    "ReplayFailed",
    "RetryOutcome",
    "apply_assignments",
    "copy_for_topic",
    "current_payload",
    "dead_letter_topic",
    "describe_failure",
    "discard",
    "edit_payload",
    "has_retries",
    "lock_group",
    "next_retry_at",
    "note_refused_copies",
    "park",
    "parse_assignment",
    "replay",
    "replay_known_versions",
    "retry_due",
    "summary",
    "write_dead_letter",
]
