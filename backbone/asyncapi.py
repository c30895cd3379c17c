"""The AsyncAPI 3.0 document of the backbone, generated from the code (backbone/catalog.py).

- channels: the topics (address = the logical topic name, the Kafka record key in the
  message binding), each with the messages published on it;
- messages: the event types, payload = the contract's JSON Schema, headers = the CloudEvents
  Kafka binding's headers (binary mode, as the relay writes them), shared as a message trait;
- operations: each context's `send` on the topics it owns and `receive` of what it subscribes
  to, its consumer group in the Kafka operation binding.

`manage.py contracts asyncapi` writes docs/asyncapi.yaml (`--check`, run by `make lint`, fails when the
committed file is stale); /api/asyncapi/ serves the same document.
"""

from collections import defaultdict
from functools import lru_cache
from typing import Any

import yaml
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from .catalog import EventTypeFacts, event_types
from .conf import backbone_settings
from .contracts import JsonDict
from .topics import Topic, topics

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
TRAIT = "cloudEvents"
CONTENT_TYPE = "application/json"

_STRING: JsonDict = {"type": "string"}
# The CloudEvents headers of every record (backbone/envelope.py writes them).
CLOUDEVENTS_HEADERS: JsonDict = {
    "type": "object",
    "required": [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "content-type",
        "ce_correlationid",
        "ce_dataversion",
    ],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0", "description": "CloudEvents spec version"},
        "ce_id": {"type": "string", "format": "uuid", "description": "unique; the consumers' dedupe key"},
        "ce_source": {"type": "string", "description": "the publishing context, e.g. /orders"},
        "ce_type": {"type": "string", "description": "the event type, e.g. orders.OrderRequested"},
        "ce_time": {"type": "string", "format": "date-time", "description": "when it happened"},
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "ce_correlationid": {**_STRING, "description": "the story (business process) it belongs to"},
        "ce_causationid": {
            **_STRING,
            "description": "ce_id of the event that caused it; absent at a story's start",
        },
        "ce_dataversion": {**_STRING, "pattern": "^[0-9]+$", "description": "the contract version"},
        "ce_traceparent": {**_STRING, "description": "W3C trace context (CloudEvents distributed tracing)"},
        "ce_tracestate": {**_STRING, "description": "W3C tracestate, when the trace has one"},
        "traceparent": {**_STRING, "description": "the same trace context, where OpenTelemetry looks"},
        "tracestate": {**_STRING, "description": "the same tracestate"},
    },
}


def channel_id(topic: str) -> str:
    return topic.replace(".", "-")


def message_id(facts: EventTypeFacts) -> str:
    return facts.contract.__name__


def document() -> JsonDict:
    facts = event_types()
    shared: JsonDict = {}
    for item in facts:
        _merge_shared(shared, item.shared_schemas(), item.type_name)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": backbone_settings.ASYNCAPI_TITLE,
            "version": "1.0.0",
            "description": (
                "The events the project's apps publish and read on Kafka, generated from their "
                "contracts (`manage.py contracts asyncapi`). Every record is a CloudEvent in binary mode; "
                "dead letters of a topic go to `<topic>.dlq`."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": {channel_id(spec.name): _channel(spec, facts) for spec in topics().values()},
        "operations": _operations(facts),
        "components": {
            "messages": {item.type_name: _message(item) for item in facts},
            "messageTraits": {TRAIT: {"headers": CLOUDEVENTS_HEADERS}},
            "schemas": dict(sorted(shared.items())),
        },
    }


def _merge_shared(shared: JsonDict, schemas: JsonDict, owner: str) -> None:
    # One namespace for every contract's nested models: two different shapes may not share a name.
    for name, schema in schemas.items():
        if shared.setdefault(name, schema) != schema:
            raise ValueError(f"{owner}: nested model {name!r} differs from another contract's")


def _channel(spec: Topic, facts: list[EventTypeFacts]) -> JsonDict:
    binding: JsonDict = {"topic": spec.name, "bindingVersion": KAFKA_BINDING_VERSION}
    if spec.compacted:
        binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    return {
        "address": spec.name,
        "title": spec.name,
        "description": f"Written by {spec.owner} only; record key: the {spec.key}.",
        "messages": {
            message_id(item): {"$ref": f"#/components/messages/{item.type_name}"}
            for item in facts
            if item.topic.name == spec.name
        },
        "bindings": {"kafka": binding},
    }


def _message(facts: EventTypeFacts) -> JsonDict:
    contract = facts.contract
    return {
        "name": facts.type_name,
        "title": f"{facts.type_name} v{contract.contract_version}",
        "summary": (contract.__doc__ or facts.type_name).strip().splitlines()[0],
        "contentType": CONTENT_TYPE,
        "traits": [{"$ref": f"#/components/messageTraits/{TRAIT}"}],
        "payload": facts.schema(),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"the {facts.topic.key} ({contract.key_field})"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "examples": [
            {
                "name": "example",
                "headers": {
                    "ce_type": facts.type_name,
                    "ce_source": f"/{contract.context}",
                    "ce_dataversion": str(contract.contract_version),
                },
                "payload": facts.example(),
            }
        ],
        "x-versions-read": list(facts.versions),
    }


def _operations(facts: list[EventTypeFacts]) -> JsonDict:
    operations: JsonDict = {}
    sent: dict[tuple[str, str], list[EventTypeFacts]] = defaultdict(list)
    received: dict[tuple[str, str], list[tuple[EventTypeFacts, tuple[str, ...]]]] = defaultdict(list)
    for item in facts:
        sent[(item.contract.context, item.topic.name)].append(item)
        for reader in item.readers:
            received[(reader.context, item.topic.name)].append((item, reader.handlers))
    for (context, topic), items in sorted(sent.items()):
        operations[f"{context}.send.{channel_id(topic)}"] = _operation(
            "send", context, topic, items, f"{context} publishes these through its outbox."
        )
    for (context, topic), read in sorted(received.items()):
        handlers = "; ".join(f"{item.type_name}: {', '.join(names)}" for item, names in read)
        operation = _operation(
            "receive", context, topic, [item for item, _ in read], f"Handlers: {handlers}."
        )
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [context]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        }
        operations[f"{context}.receive.{channel_id(topic)}"] = operation
    return operations


def _operation(
    action: str, context: str, topic: str, items: list[EventTypeFacts], description: str
) -> JsonDict:
    channel = channel_id(topic)
    return {
        "action": action,
        "title": f"{context} {action}s on {topic}",
        "description": description,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message_id(item)}"} for item in items],
    }


def to_yaml(spec: Any) -> str:
    header = "# Generated by `manage.py contracts asyncapi` from the event contracts: do not edit.\n"
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


@lru_cache(maxsize=1)
def rendered() -> str:
    """The document as YAML, built once per process (the contracts are code)."""
    return to_yaml(document())


@require_safe
def asyncapi_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(rendered(), content_type="application/yaml; charset=utf-8")
