"""The `<topic>.dlq` topics: a copy of each dead letter, for tools that read Kafka.

The copy carries the original key, value and headers plus `dlq_*` headers saying what went
wrong. Its delivery is confirmed before the dead letter's row commits: a copy that may work
later raises DeadLetterPublishError (the batch rolls back and is applied again); a copy
Kafka refuses for good (too large, not authorised) is reported by `flush()`, and the row
keeps the reason. Values and headers are cut so the copy of a record too large to handle
still fits the topic.
"""

from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from backbone.conf import backbone_settings

from ..envelope import Headers
from ..kafka import physical_topic, producer_config
from ..records import ConsumedRecord
from ..topics import topics
from .errors import DeadLetterPublishError, summary

HEADER_PREFIX = "dlq_"
_MAX_HEADER_ERROR = 1000


class DeadLetterPublisher(Protocol):
    def publish(
        self,
        record: ConsumedRecord,
        *,
        dead_letter_id: int,
        group: str,
        reason: str,
        error: str,
        attempts: int,
    ) -> None: ...

    def flush(self) -> dict[int, str]:
        """Wait until every published record is stored. Returns the dead letters whose copy
        Kafka refused for good (id -> why); raises DeadLetterPublishError when it may work later."""


def dead_letter_topic(topic: str) -> str:
    spec = topics().get(topic)
    return spec.dead_letter_topic if spec else f"{topic}.dlq"


# Refusals that no retry can change: the copy stays out of the topic, the row records why.
_REFUSED_FOR_GOOD = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
    }
)
# Original headers beyond this many bytes are left out of the copy (the table keeps them).
_MAX_COPIED_HEADER_BYTES = 16 * 1024


def copy_for_topic(record: ConsumedRecord) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers a `.dlq` copy carries: at most EVENT_MAX_BYTES of the value and
    16 KiB of the original headers, so the copy of a record too large to handle still fits the
    topic; what was cut is said in `dlq_value_bytes` / `dlq_headers_bytes`."""
    value, headers = record.value, list(record.headers)
    if value is not None and len(value) > backbone_settings.EVENT_MAX_BYTES:
        headers.append((f"{HEADER_PREFIX}value_bytes", str(len(value)).encode()))
        value = value[: backbone_settings.EVENT_MAX_BYTES]
    header_bytes = sum(len(name) + len(content) for name, content in record.headers)
    if header_bytes > _MAX_COPIED_HEADER_BYTES:
        dropped = (f"{HEADER_PREFIX}headers_bytes", str(header_bytes).encode())
        headers = [dropped, *headers[len(record.headers) :]]
    return value, headers


class KafkaDeadLetterPublisher:
    """Sends the original key, value and headers, plus `dlq_*` headers saying what went wrong."""

    def __init__(self, producer: Producer, *, flush_timeout: float = 30.0) -> None:
        self._producer = producer
        self._flush_timeout = flush_timeout
        self._failures: list[str] = []
        self._refused: dict[int, str] = {}

    @classmethod
    def create(cls) -> "KafkaDeadLetterPublisher":
        return cls(Producer(producer_config()))

    def publish(
        self,
        record: ConsumedRecord,
        *,
        dead_letter_id: int,
        group: str,
        reason: str,
        error: str,
        attempts: int,
    ) -> None:
        value, copied = copy_for_topic(record)
        headers: Headers = [
            *copied,
            (f"{HEADER_PREFIX}error", summary(error)[:_MAX_HEADER_ERROR].encode()),
            (f"{HEADER_PREFIX}reason", reason.encode()),
            (f"{HEADER_PREFIX}attempts", str(attempts).encode()),
            (f"{HEADER_PREFIX}group", group.encode()),
            (f"{HEADER_PREFIX}dead_letter_id", str(dead_letter_id).encode()),
            (f"{HEADER_PREFIX}original_topic", record.topic.encode()),
            (f"{HEADER_PREFIX}original_partition", str(record.partition).encode()),
            (f"{HEADER_PREFIX}original_offset", str(record.offset).encode()),
        ]
        try:
            self._producer.produce(
                physical_topic(dead_letter_topic(record.topic)),
                key=record.key.encode() if record.key is not None else None,
                value=value,
                headers=headers,
                on_delivery=lambda error, message: self._on_delivery(dead_letter_id, error),
            )
        except KafkaException as refused:  # by the client itself, before sending
            self._note(dead_letter_id, refused.args[0])
        self._producer.poll(0)

    def _on_delivery(self, dead_letter_id: int, error: KafkaError | None) -> None:
        if error is not None:
            self._note(dead_letter_id, error)

    def _note(self, dead_letter_id: int, error: KafkaError) -> None:
        if error.code() in _REFUSED_FOR_GOOD:
            self._refused[dead_letter_id] = error.str()
        else:
            self._failures.append(error.str())

    def flush(self) -> dict[int, str]:
        remaining = self._producer.flush(self._flush_timeout)
        failures, self._failures = self._failures, []
        refused, self._refused = self._refused, {}
        if remaining or failures:
            problem = failures[0] if failures else f"{remaining} record(s) still in flight"
            raise DeadLetterPublishError(f"dead-letter topic did not confirm the record: {problem}")
        return refused
