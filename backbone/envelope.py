"""The CloudEvents 1.0 Kafka protocol binding: binary content mode written, both modes read.

The record value is the event's JSON; the headers carry the context attributes:
`ce_specversion`, `ce_id`, `ce_source`, `ce_type`, `ce_time`, `content-type`, and the
extensions `ce_correlationid`, `ce_causationid` (absent for the first event of a story)
and `ce_dataversion`, and the distributed tracing extension `ce_traceparent` (the W3C trace
context of the code that emitted the event; see tracing.py). The same trace context also goes as
a plain `traceparent` header, where OpenTelemetry's Kafka instrumentations (and other stacks) look
for it; a reader prefers it and falls back on the extension, which older records carry alone.
The vendors' W3C `tracestate`, when the trace has one, goes the same two ways (`ce_tracestate`,
the extension's other attribute, and a plain `tracestate`), and is read with its traceparent.
The record key is the aggregate id.

What the relay writes is binary mode. A consumer also reads structured mode, as the binding says
receivers should: a record whose `content-type` is `application/cloudevents` (`+json`, any case,
with parameters) carries the whole event as JSON in its value, the attributes (extensions
included) at its top level and the event in `data` (or `data_base64`). `read_record()` turns
either mode into the same Envelope and data bytes; the attributes are checked by the same rules.
"""

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from .contracts import ContractError
from .tracing import HEADER as TRACEPARENT_HEADER
from .tracing import STATE_HEADER as TRACESTATE_HEADER
from .tracing import parse as parse_traceparent
from .tracing import parse_state as parse_tracestate

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_HEADERS = (
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_correlationid",
    "ce_dataversion",
)

# Kafka record headers as confluent-kafka takes and gives them: values are bytes in our
# records, but a hostile producer's may be missing (None) and the client also accepts text.
Headers = list[tuple[str, str | bytes | None]]
# What the envelope reads them from: the client's list, or a consumed record's tuple as it is.
HeaderPairs = Iterable[tuple[str, str | bytes | None]]


class InvalidEnvelope(ContractError):
    """A record is not a CloudEvent this backbone can read."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    type: str
    source: str
    time: str
    data_version: int
    correlation_id: str
    causation_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def headers(self) -> Headers:
        headers: Headers = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.encode()),
            ("content-type", CONTENT_TYPE.encode()),
            ("ce_correlationid", self.correlation_id.encode()),
            ("ce_dataversion", str(self.data_version).encode()),
        ]
        if self.causation_id:
            headers.append(("ce_causationid", self.causation_id.encode()))
        if self.traceparent:
            traceparent = self.traceparent.encode()
            headers += [("ce_traceparent", traceparent), (TRACEPARENT_HEADER, traceparent)]
            if self.tracestate:
                tracestate = self.tracestate.encode()
                headers += [("ce_tracestate", tracestate), (TRACESTATE_HEADER, tracestate)]
        return headers

    @classmethod
    def from_headers(cls, headers: HeaderPairs | None) -> "Envelope":
        return cls._from_values(_header_map(headers), what="headers")

    @classmethod
    def _from_values(cls, values: dict[str, str], *, what: str) -> "Envelope":
        """The envelope of binary-mode headers, or of structured-mode attributes put as headers."""
        missing = [name for name in REQUIRED_HEADERS if not values.get(name)]
        if missing:
            if what != "headers":  # name the attributes as the structured event spells them
                missing = [name.removeprefix("ce_") for name in missing]
            raise InvalidEnvelope(f"missing CloudEvents {what}: {', '.join(missing)}")
        if values["ce_specversion"] != SPEC_VERSION:
            raise InvalidEnvelope(f"unsupported ce_specversion {values['ce_specversion']!r}")
        content_type = values.get("content-type", CONTENT_TYPE)
        if not content_type.startswith(CONTENT_TYPE):
            raise InvalidEnvelope(f"unsupported content-type {content_type!r}")
        try:
            data_version = int(values["ce_dataversion"])
        except ValueError:
            raise InvalidEnvelope(f"ce_dataversion is not a number: {values['ce_dataversion']!r}") from None
        traceparent, tracestate = _trace_context(values)
        return cls(
            id=values["ce_id"],
            type=values["ce_type"],
            source=values["ce_source"],
            time=values["ce_time"],
            data_version=data_version,
            correlation_id=values["ce_correlationid"],
            causation_id=values.get("ce_causationid") or None,
            traceparent=traceparent,
            tracestate=tracestate,
        )


STRUCTURED_CONTENT_TYPE = "application/cloudevents"
# Where the structured mode's JSON value says what binary mode's headers say.
_ATTRIBUTES = {
    "specversion": "ce_specversion",
    "id": "ce_id",
    "source": "ce_source",
    "type": "ce_type",
    "time": "ce_time",
    "datacontenttype": "content-type",
    "correlationid": "ce_correlationid",
    "causationid": "ce_causationid",
    "dataversion": "ce_dataversion",
    "traceparent": "ce_traceparent",
    "tracestate": "ce_tracestate",
}


def is_structured(headers: HeaderPairs | None) -> bool:
    """Whether the record's content-type says structured mode (case-insensitive, as the binding
    says, and with or without parameters such as `; charset=utf-8`)."""
    for name, raw in headers or ():
        if name.lower() == "content-type" and raw is not None:
            text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
            return text.strip().lower().startswith(STRUCTURED_CONTENT_TYPE)
    return False


def read_record(headers: HeaderPairs | None, value: bytes) -> tuple[Envelope, bytes]:
    """The envelope and the event's JSON of a record in either content mode."""
    if not is_structured(headers):
        return Envelope.from_headers(headers), value
    return _read_structured(_header_map(headers), value)


def _read_structured(headers: dict[str, str], value: bytes) -> tuple[Envelope, bytes]:
    try:
        event = json.loads(value)
    except ValueError as error:
        raise InvalidEnvelope(f"structured CloudEvent is not JSON ({error})") from None
    if not isinstance(event, dict):
        raise InvalidEnvelope("structured CloudEvent is not a JSON object")
    values = {
        # The W3C headers still win over the extension, as in binary mode.
        name: headers[name]
        for name in (TRACEPARENT_HEADER, TRACESTATE_HEADER)
        if name in headers
    }
    for attribute, header in _ATTRIBUTES.items():
        if event.get(attribute) is not None:
            values[header] = _attribute_text(attribute, event[attribute])
    envelope = Envelope._from_values(values, what="attributes")
    return envelope, _structured_data(event)


def _attribute_text(attribute: str, value: object) -> str:
    if isinstance(value, str):
        return value
    # The JSON format lets an integer extension be a JSON number.
    if attribute == "dataversion" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidEnvelope(f"attribute {attribute} is not a string: {json.dumps(value)[:100]}")


def _structured_data(event: dict[str, object]) -> bytes:
    if "data_base64" in event:
        encoded = event["data_base64"]
        try:
            if not isinstance(encoded, str):
                raise ValueError("not a string")
            return base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error) as error:
            raise InvalidEnvelope(f"data_base64 is not base64 ({error})") from None
    if "data" not in event:
        raise InvalidEnvelope("structured CloudEvent has no data")
    return json.dumps(event["data"]).encode()


def _trace_context(values: dict[str, str]) -> tuple[str | None, str | None]:
    """The plain W3C headers, else the CloudEvents extension: a traceparent and the tracestate
    that came with it. Optional: a missing or malformed traceparent only means the handler starts
    a new trace (and a tracestate without its traceparent is ignored, as the W3C spec says)."""
    for parent_header, state_header in (
        (TRACEPARENT_HEADER, TRACESTATE_HEADER),
        ("ce_traceparent", "ce_tracestate"),
    ):
        if traceparent := parse_traceparent(values.get(parent_header)):
            return traceparent, parse_tracestate(values.get(state_header))
    return None, None


def _header_map(headers: HeaderPairs | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        try:
            values[name] = raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise InvalidEnvelope(f"header {name} is not UTF-8") from None
    return values


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, as CloudEvents' `time` attribute wants it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
