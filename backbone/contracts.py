"""Event contracts: typed, immutable, versioned, registered with their topic.

A context declares what it publishes in its own `events.py`::

    class OrderRequested(Event, topic="orders", key="order_id", version=1):
        order_id: UUID
        lines: list[OrderLine]

The type name is `<context>.<ClassName>` (the context is the label of the installed app the class
belongs to, found in Django's app registry; `app_label=` names it instead), and the
registry turns a record's type, version and JSON back into the class. Older versions are
upcast on read, so handlers only ever see the current shape.

Tolerant reader, strict writer: building a contract (what emit() publishes) refuses a field the
contract lacks, but `registry.decode()` ignores the fields it does not know, at every level, so an
additive change published by a newer release is read by an older consumer. Nested parts of a
contract derive from `Contract` for that reason (a plain pydantic model inside an event is refused
at class creation). A record whose version is newer than the contract raises `NewerVersion`: the
consumer keeps it (see docs/consumers.md, "Newer versions") instead of guessing its shape.
"""

import json
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator

from .topics import context_of

JsonDict = dict[str, Any]
Upcaster = Callable[[JsonDict], JsonDict]


class ContractError(Exception):
    """A record does not match any registered contract (unknown type, version or shape)."""


class NewerVersion(ContractError):
    """A record's version is newer than this code's contract: it cannot be read yet."""

    def __init__(self, type_name: str, version: int, known: int) -> None:
        super().__init__(f"{type_name} v{version} is newer than this consumer reads (v{known})")
        self.type_name = type_name
        self.version = version
        self.known = known


# The validation context of a read: unknown fields are dropped instead of refused.
_READING = {"tolerant": True}


class Contract(BaseModel):
    """Base of events and their nested parts: strict when built, tolerant when read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _ignore_unknown_when_reading(cls, data: Any, info: ValidationInfo) -> Any:
        # Only decode() passes the context; a contract built in code (emit) stays strict.
        if not info.context or not info.context.get("tolerant") or not isinstance(data, dict):
            return data
        known = _known_names(cls)
        if data.keys() <= known:
            return data
        return {name: value for name, value in data.items() if name in known}


def _known_names(cls: type[BaseModel]) -> set[str]:
    names = set(cls.model_fields)
    for field in cls.model_fields.values():
        if isinstance(field.alias, str):
            names.add(field.alias)
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
    return names


def _plain_nested_models(cls: type[BaseModel]) -> list[str]:
    """Fields whose annotation names a pydantic model that is not a Contract (read strictly)."""
    found = []
    for name, field in cls.model_fields.items():
        for part in _annotation_parts(field.annotation):
            if isinstance(part, type) and issubclass(part, BaseModel) and not issubclass(part, Contract):
                found.append(f"{name} ({part.__name__})")
    return found


def _annotation_parts(annotation: Any) -> list[Any]:
    parts = [annotation]
    for argument in getattr(annotation, "__args__", ()) or ():
        parts.extend(_annotation_parts(argument))
    return parts


class Event(Contract):
    """Base of every event contract: a frozen, past-tense fact about one aggregate."""

    topic: ClassVar[str]
    key_field: ClassVar[str]
    # Named apart from any field: an event may carry a `version` of its own aggregate.
    contract_version: ClassVar[int]
    context: ClassVar[str]
    type_name: ClassVar[str]

    def __init_subclass__(
        cls,
        *,
        topic: str | None = None,
        key: str | None = None,
        version: int = 1,
        app_label: str | None = None,
        **kwargs: Any,
    ) -> None:
        # The contract keywords are read once the fields exist, in __pydantic_init_subclass__.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        topic: str | None = None,
        key: str | None = None,
        version: int = 1,
        app_label: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if topic is None:  # an abstract intermediate class, not a contract
            return
        if key not in cls.model_fields:
            raise TypeError(f"{cls.__name__}: key field {key!r} is not one of its fields")
        plain = _plain_nested_models(cls)
        if plain:
            raise TypeError(f"{cls.__name__}: nested models must derive from Contract: {', '.join(plain)}")
        cls.topic = topic
        cls.key_field = key
        cls.contract_version = version
        # The app the class belongs to, as Django finds a model's (app_label= says it instead).
        cls.context = app_label or context_of(cls.__module__)
        cls.type_name = f"{cls.context}.{cls.__name__}"
        registry.register(cls)

    @property
    def key(self) -> str:
        """The aggregate id: the Kafka record key, so one aggregate's events stay in order."""
        return str(getattr(self, self.key_field))

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)


class EventRegistry:
    """Maps `<context>.<EventName>` to its contract class and upcasters."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, cls: type[Event]) -> None:
        existing = self._classes.get(cls.type_name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise TypeError(f"event type {cls.type_name} registered twice")
        self._classes[cls.type_name] = cls

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Register a function that turns version N's JSON into version N+1's."""

        def decorator(function: Upcaster) -> Upcaster:
            self._upcasters[(type_name, from_version)] = function
            return function

        return decorator

    def has_upcaster(self, type_name: str, from_version: int) -> bool:
        return (type_name, from_version) in self._upcasters

    def get(self, type_name: str) -> type[Event]:
        try:
            return self._classes[type_name]
        except KeyError:
            raise ContractError(f"unknown event type {type_name!r}") from None

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._classes

    def knows(self, type_name: str, version: int) -> bool:
        """Whether this code can read `version` of `type_name` (a newer one it cannot)."""
        cls = self._classes.get(type_name)
        return cls is not None and version <= cls.contract_version

    def all(self) -> list[type[Event]]:
        return sorted(self._classes.values(), key=lambda cls: cls.type_name)

    def readable_versions(self, type_name: str) -> list[int]:
        """The current version and every older one an unbroken chain of upcasters lifts to it."""
        versions = [self.get(type_name).contract_version]
        while (type_name, versions[0] - 1) in self._upcasters:
            versions.insert(0, versions[0] - 1)
        return versions

    def decode(self, type_name: str, version: int, data: bytes, *, strict: bool = False) -> Event:
        """Turn a record's JSON into the current version of its contract, ignoring the fields
        this code does not know (refusing them with `strict`, for a payload a person typed);
        NewerVersion when the record is newer than the contract."""
        cls = self.get(type_name)
        context = None if strict else _READING
        if version > cls.contract_version:
            raise NewerVersion(type_name, version, cls.contract_version)
        try:
            if version == cls.contract_version:
                return cls.model_validate_json(data, context=context)
            payload = self._upcast(type_name, version, cls.contract_version, json.loads(data))
            return cls.model_validate(payload, context=context)
        except ValidationError as error:
            raise ContractError(f"{type_name} v{version}: {_first_error(error)}") from None
        except ValueError as error:  # not JSON at all
            raise ContractError(f"{type_name} v{version}: invalid JSON ({error})") from None

    def _upcast(self, type_name: str, version: int, target: int, payload: JsonDict) -> JsonDict:
        while version < target:
            try:
                payload = self._upcasters[(type_name, version)](payload)
            except KeyError:
                raise ContractError(f"no upcaster for {type_name} from version {version}") from None
            version += 1
        return payload


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(root)"
    return f"{location}: {first['msg']} ({error.error_count()} error(s))"


registry = EventRegistry()
