"""What events exist, who publishes them, who reads them and what they look like.

One list of facts drawn from the code alone (the contract registry, the topics and the
subscriptions), read by the AsyncAPI document (backbone/asyncapi.py) and the admin's event
catalog (outbox/catalog.py, which adds what the outbox table knows).

Only the shop's own contracts count, those of a context's events.py on a topic it owns; and
only the handlers of installed apps. A test's probes (declared elsewhere, read by made-up
contexts) are left out, so the document is the same in every process.
"""

from dataclasses import dataclass
from typing import Any

from django.apps import apps

from .contracts import Event, JsonDict, registry
from .subscriptions import subscriptions
from .topics import Topic, topics

# Where every $ref of a payload schema points: the AsyncAPI document's shared schemas.
REF_TEMPLATE = "#/components/schemas/{model}"
EXAMPLE_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_TIME = "2026-01-01T12:00:00Z"


@dataclass(frozen=True)
class Reader:
    """One context's handlers of one event type: its consumer group runs them."""

    context: str
    handlers: tuple[str, ...]


@dataclass(frozen=True)
class EventTypeFacts:
    contract: type[Event]
    readers: tuple[Reader, ...]
    versions: tuple[int, ...]  # every version a reader accepts: the current one and the upcast ones

    @property
    def type_name(self) -> str:
        return self.contract.type_name

    @property
    def topic(self) -> Topic:
        return topics()[self.contract.topic]

    def schema(self) -> JsonDict:
        """The payload's JSON Schema, its $defs left out (see `shared_schemas`)."""
        schema = self.contract.model_json_schema(ref_template=REF_TEMPLATE)
        schema.pop("$defs", None)
        return schema

    def shared_schemas(self) -> JsonDict:
        return dict(self.contract.model_json_schema(ref_template=REF_TEMPLATE).get("$defs", {}))

    def example(self) -> Any:
        """A payload that matches the schema, for readers of the catalog and the document."""
        return example_of(self.schema(), self.shared_schemas())


def is_published_contract(contract: type[Event]) -> bool:
    """Declared in its app's events.py (the convention) by its topic's single writer."""
    if not is_installed_app(contract.context):
        return False
    declared = contract.__module__ == f"{apps.get_app_config(contract.context).name}.events"
    declared_topic = topics().get(contract.topic)
    return declared and declared_topic is not None and declared_topic.owner == contract.context


def is_installed_app(context: str) -> bool:
    return any(app.label == context for app in apps.get_app_configs())


def event_types() -> list[EventTypeFacts]:
    """Every contract of the installed apps, by type name, with the handlers that read it."""
    readers = _readers()
    return [
        EventTypeFacts(
            contract=contract,
            readers=tuple(readers.get(contract.type_name, ())),
            versions=tuple(registry.readable_versions(contract.type_name)),
        )
        for contract in registry.all()
        if is_published_contract(contract)
    ]


def _readers() -> dict[str, list[Reader]]:
    by_type: dict[str, list[Reader]] = {}
    for context in subscriptions.contexts():
        if not is_installed_app(context):
            continue
        for type_name, subs in sorted(subscriptions.for_context(context).items()):
            handlers = tuple(sorted(sub.name for sub in subs))
            by_type.setdefault(type_name, []).append(Reader(context=context, handlers=handlers))
    return by_type


def example_of(schema: JsonDict, shared: JsonDict) -> Any:
    """The simplest value a JSON Schema (as pydantic writes it) accepts."""
    if "$ref" in schema:
        return example_of(shared[schema["$ref"].rsplit("/", 1)[-1]], shared)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            choices = [choice for choice in schema[combinator] if choice.get("type") != "null"]
            return example_of((choices or schema[combinator])[0], shared)
    return _example_of_type(schema, shared)


def _example_of_type(schema: JsonDict, shared: JsonDict) -> Any:
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_of(sub, shared) for name, sub in properties.items()}
    if kind == "array":
        if "prefixItems" in schema:
            return [example_of(item, shared) for item in schema["prefixItems"]]
        return [example_of(schema.get("items", {}), shared)] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        low: float = schema.get("minimum", schema.get("exclusiveMinimum")) or 0
        return int(low) + 1  # above any bound, exclusive or not; 1 rather than 0 reads as a quantity
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {"uuid": EXAMPLE_UUID, "date-time": EXAMPLE_TIME}.get(schema.get("format", ""), "string")
