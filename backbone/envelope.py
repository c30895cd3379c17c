"""The CloudEvents 1.0 Kafka protocol binding, binary content mode.

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
"""

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
        values = _header_map(headers)
        missing = [name for name in REQUIRED_HEADERS if not values.get(name)]
        if missing:
            raise InvalidEnvelope(f"missing CloudEvents headers: {', '.join(missing)}")
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
