"""From a Kafka record to a handled event: decode, route, run the context's handlers.

The runner, dead-letter replay and parked-record release all go through `route()` and
`handle()`, so a record is judged the same way wherever it is applied:

- `Unrouted`: the context has no handler for its type (receiver-driven routing: skip it);
- `Invalid`: not an event this code can read (no CloudEvents headers or attributes, bad JSON,
  a schema mismatch, over the size limit), or not from the topic's single writer (a
  `ce_source` or topic that does not match the contract): retrying cannot help, it goes to
  the dead letters at once;
- `Newer`: a version newer than this code's contract: kept (a dead letter of reason
  `newer_version`, its key's later records parked behind it) until a consumer that knows the
  version applies it (see `deadletters.replay_known_versions`);
- `Routed`: the decoded event, its envelope and the handlers to run.
"""

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from backbone.conf import backbone_settings

from .contracts import ContractError, Event, NewerVersion, registry
from .correlation import batch_scope, correlation_scope
from .envelope import Envelope, Headers, InvalidEnvelope, is_structured, read_record
from .kafka import logical_topic
from .subscriptions import Subscription
from .topics import topics
from .tracing import span_scope

if TYPE_CHECKING:  # the SDK's types; imported at run time only when tracing is configured
    from opentelemetry.trace import Span

Routes = dict[str, list[Subscription]]
StoredHeaders = list[list[str]]


class KafkaMessage(Protocol):
    """The part of confluent_kafka.Message the runner reads (fakes implement it in tests)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | dict[str, str | bytes | None] | None: ...


def _consumed_headers(
    headers: Headers | dict[str, str | bytes | None] | None,
) -> tuple[tuple[str, bytes], ...]:
    """Consumed headers are a list of (name, bytes or None); the client's types also allow the
    text and dict forms that produce() accepts, so those are read too. A missing value is b""."""
    if headers is None:
        return ()
    if isinstance(headers, list) and all(type(value) is bytes for _, value in headers):
        return tuple(headers)  # type: ignore[arg-type]  # checked: every value is bytes (the usual case)
    pairs = headers.items() if isinstance(headers, dict) else headers
    return tuple((name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs)


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """One record as read from a topic (logical name), independent of the Kafka client."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_message(cls, message: KafkaMessage) -> "ConsumedRecord":
        raw_key = message.key()
        return cls(
            topic=_logical_topic(message.topic() or ""),
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            # Keys are aggregate ids (text); a stray byte must not stop the partition.
            key=raw_key.decode("utf-8", errors="replace") if raw_key is not None else None,
            value=message.value(),
            headers=_consumed_headers(message.headers()),
        )

    @classmethod
    def from_stored(
        cls, *, topic: str, partition: int, offset: int, key: str | None, value: Any, headers: StoredHeaders
    ) -> "ConsumedRecord":
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=bytes(value) if value is not None else None,
            headers=decode_headers(headers),
        )

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)

    @property
    def identity(self) -> str:
        """What tells this record from another one at the same position.

        A recreated topic (or a new cluster) starts its offsets again at 0, so a position alone
        never proves that a record is one seen before: its ce_id does, or for a record without
        a usable one, a digest of its value.
        """
        event_id = self.header("ce_id")
        if event_id and len(event_id) <= MAX_ID_LENGTH:
            return event_id
        return "sha256:" + hashlib.sha256(self.value or b"").hexdigest()

    def header(self, name: str) -> str | None:
        for header_name, value in self.headers:
            if header_name == name:
                return value.decode("utf-8", errors="replace")
        return None

    def describe(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class Unrouted:
    event_type: str


@dataclass(frozen=True, slots=True)
class Invalid:
    error: str


@dataclass(frozen=True, slots=True)
class Newer:
    error: str


@dataclass(frozen=True, slots=True)
class Routed:
    envelope: Envelope
    event: Event
    handlers: tuple[Subscription, ...]
    event_id: str  # the ce_id in canonical form, as the inbox stores it
    record: ConsumedRecord  # where it was read: its consumer span says so


# Column sizes of the inbox and dead-letter tables: a longer key or id is not one of ours.
MAX_KEY_LENGTH = 200
MAX_ID_LENGTH = 128

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# The namespace is fixed for a process; the settings lookup is not free at 5,000 records/s.
_logical_topic = cache(logical_topic)


def unrouted_type(record: ConsumedRecord, routes: Routes) -> str | None:
    """The record's ce_type when the context has no handler for it: judged by the header
    alone, so such a record costs no decoding (and no transaction, see consumer/batch.py)."""
    event_type = record.header("ce_type")
    return event_type if event_type and event_type not in routes else None


def route(record: ConsumedRecord, routes: Routes) -> Unrouted | Invalid | Newer | Routed:
    """Decide what a context does with a record; never raises for bad input."""
    if (event_type := unrouted_type(record, routes)) is not None:
        return Unrouted(event_type)
    structured = is_structured(record.headers)
    if structured and (too_large := _over_size_limit(record)):
        return Invalid(too_large)  # before parsing a structured value: it is the whole event
    try:
        envelope, data = read_record(record.headers, record.value or b"")
    except InvalidEnvelope as error:
        return Invalid(str(error))
    handlers = routes.get(envelope.type)
    if not handlers:  # unreachable with a ce_type header; kept for a clear answer
        return Unrouted(envelope.type)
    event_id = _canonical_uuid(envelope.id)
    if event_id is None:
        return Invalid(f"ce_id is not a UUID: {envelope.id[:100]!r}")
    if record.value is None and not structured:
        return Invalid("record has no value (a tombstone), not an event")
    if record.key is not None and len(record.key) > MAX_KEY_LENGTH:
        return Invalid(f"record key of {len(record.key)} characters is over {MAX_KEY_LENGTH}")
    if len(envelope.correlation_id) > MAX_ID_LENGTH:
        return Invalid(f"ce_correlationid is over {MAX_ID_LENGTH} characters")
    if too_large := _over_size_limit(record):
        return Invalid(too_large)
    forged = wrong_producer(envelope, record.topic)
    if forged is not None:
        return Invalid(forged)
    try:
        event = registry.decode(envelope.type, envelope.data_version, data)
    except NewerVersion as error:
        return Newer(str(error))
    except ContractError as error:
        return Invalid(str(error))
    return Routed(envelope=envelope, event=event, handlers=tuple(handlers), event_id=event_id, record=record)


def _over_size_limit(record: ConsumedRecord) -> str | None:
    size = len(record.value or b"")
    if size <= backbone_settings.EVENT_MAX_BYTES:
        return None
    return (
        f"record value of {size} bytes is over the event size limit of "
        f"{backbone_settings.EVENT_MAX_BYTES} bytes (EVENT_MAX_BYTES)"
    )


def wrong_producer(envelope: Envelope, topic: str) -> str | None:
    """Why an event cannot come from the single writer of `topic`, or None when it can.

    Only the owning context writes a topic (emit() enforces it on our side); a record whose
    type is published elsewhere, or whose `ce_source` is not the owner, was written by someone
    else, and handling it would let any producer drive this context (a forged OrderConfirmed
    would ship an order nobody paid for). Kafka ACLs keep such producers off the topics; this
    check keeps them out of the handlers when the ACLs are missing or wrong.
    """
    spec = topics().get(topic)
    if spec is None:
        return f"topic {topic!r} has no single writer in backbone.topics"
    try:
        contract = registry.get(envelope.type)
    except ContractError as error:
        return str(error)
    if contract.topic != topic:
        return f"{envelope.type} is published on {contract.topic!r}, not on {topic!r}"
    if envelope.source != f"/{spec.owner}":
        return f"ce_source {envelope.source!r} is not the single writer of {topic!r} (/{spec.owner})"
    return None


# A batch handler -> the items gathered for it, in record order (see `handle`).
BatchItems = dict[Subscription, list[tuple[Event, Envelope]]]


def _canonical_uuid(value: str) -> str | None:
    """The UUID in canonical form, or None; the relay's ce_ids are canonical already, and a
    match is cheaper than parsing one."""
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def handle(routed: Routed, *, group: str, batches: BatchItems | None = None) -> None:
    """Run the handlers as part of the event's story: what they emit inherits its correlation id
    and takes its ce_id as causation id, and their log lines carry the correlation id. They run
    in a `process <topic>` span of consumer group `group` that continues the event's trace, so
    what they emit carries a child traceparent.

    Batch handlers get the event added to `batches`, for `handle_batch` to run later; without
    `batches` they are called at once with this one item.
    """
    single = [subscription for subscription in routed.handlers if not subscription.batch]
    if single:
        with (
            correlation_scope(routed.envelope.correlation_id, causation_id=routed.envelope.id),
            span_scope(
                f"process {routed.record.topic}",
                routed.envelope.traceparent,
                kind="consumer",
                tracestate=routed.envelope.tracestate,
            ) as span,
        ):
            if span is not None:
                _describe_processing(span, routed, group)
            for subscription in single:
                subscription.call(routed.event, routed.envelope)
    for subscription in routed.handlers:
        if not subscription.batch:
            continue
        if batches is None:
            handle_batch(subscription, [(routed.event, routed.envelope)])
        else:
            batches.setdefault(subscription, []).append((routed.event, routed.envelope))


def _describe_processing(span: "Span", routed: Routed, group: str) -> None:
    """OpenTelemetry's messaging attributes of a consumer span (semantic conventions 1.3x), so
    a tracing backend shows it as other stacks' Kafka consumers; the ce_type and story too."""
    record = routed.record
    span.set_attribute("messaging.system", "kafka")
    span.set_attribute("messaging.operation.type", "process")
    span.set_attribute("messaging.operation.name", "process")
    span.set_attribute("messaging.destination.name", record.topic)
    span.set_attribute("messaging.consumer.group.name", group)
    span.set_attribute("messaging.destination.partition.id", str(record.partition))
    span.set_attribute("messaging.kafka.offset", record.offset)
    if record.key is not None:
        span.set_attribute("messaging.kafka.message.key", record.key)
    span.set_attribute("messaging.message.id", routed.envelope.id)
    span.set_attribute("messaging.message.conversation_id", routed.envelope.correlation_id)
    span.set_attribute("cloudevents.event_type", routed.envelope.type)


def handle_batch(subscription: Subscription, items: Sequence[tuple[Event, Envelope]]) -> None:
    """Run one batch handler over `items`, outside any story (it must not emit)."""
    with batch_scope(subscription.name):
        subscription.call_batch(items)


def encode_headers(headers: Iterable[tuple[str, bytes]]) -> StoredHeaders:
    """Headers as JSON: text when they are UTF-8 (CloudEvents headers are), else base64."""
    stored: StoredHeaders = []
    for name, value in headers:
        try:
            stored.append([name, value.decode("utf-8")])
        except UnicodeDecodeError:
            stored.append([name, base64.b64encode(value).decode("ascii"), "base64"])
    return stored


def decode_headers(stored: StoredHeaders) -> tuple[tuple[str, bytes], ...]:
    decoded = []
    for name, value, *encoding in stored:
        raw = base64.b64decode(value) if encoding == ["base64"] else value.encode("utf-8")
        decoded.append((name, raw))
    return tuple(decoded)
