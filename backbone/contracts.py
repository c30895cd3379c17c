"""Event contracts: typed, immutable, versioned, registered with their topic.

A context declares what it publishes in its own `events.py`::

    class OrderRequested(Event, topic="orders", key="order_id", version=1):
        order_id: UUID
        lines: list[OrderLine]

The type name is `<context>.<ClassName>` (the context is the app the class lives in), and the
registry turns a record's type, version and JSON back into the class. Older versions are
upcast on read, so handlers only ever see the current shape.
"""

import json
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

JsonDict = dict[str, Any]
Upcaster = Callable[[JsonDict], JsonDict]


class ContractError(Exception):
    """A record does not match any registered contract (unknown type, version or shape)."""


class Event(BaseModel):
    """Base of every event contract: a frozen, past-tense fact about one aggregate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: ClassVar[str]
    key_field: ClassVar[str]
    # Named apart from any field: an event may carry a `version` of its own aggregate.
    contract_version: ClassVar[int]
    context: ClassVar[str]
    type_name: ClassVar[str]

    def __init_subclass__(
        cls, *, topic: str | None = None, key: str | None = None, version: int = 1, **kwargs: Any
    ) -> None:
        # The contract keywords are read once the fields exist, in __pydantic_init_subclass__.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls, *, topic: str | None = None, key: str | None = None, version: int = 1, **kwargs: Any
    ) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if topic is None:  # an abstract intermediate class, not a contract
            return
        if key not in cls.model_fields:
            raise TypeError(f"{cls.__name__}: key field {key!r} is not one of its fields")
        cls.topic = topic
        cls.key_field = key
        cls.contract_version = version
        cls.context = cls.__module__.split(".")[0]
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

    def get(self, type_name: str) -> type[Event]:
        try:
            return self._classes[type_name]
        except KeyError:
            raise ContractError(f"unknown event type {type_name!r}") from None

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._classes

    def all(self) -> list[type[Event]]:
        return sorted(self._classes.values(), key=lambda cls: cls.type_name)

    def readable_versions(self, type_name: str) -> list[int]:
        """The current version and every older one an unbroken chain of upcasters lifts to it."""
        versions = [self.get(type_name).contract_version]
        while (type_name, versions[0] - 1) in self._upcasters:
            versions.insert(0, versions[0] - 1)
        return versions

    def decode(self, type_name: str, version: int, data: bytes) -> Event:
        """Turn a record's JSON into the current version of its contract."""
        cls = self.get(type_name)
        if version > cls.contract_version:
            raise ContractError(
                f"{type_name} version {version} is newer than this code knows ({cls.contract_version})"
            )
        try:
            if version == cls.contract_version:
                return cls.model_validate_json(data)
            payload = self._upcast(type_name, version, cls.contract_version, json.loads(data))
            return cls.model_validate(payload)
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
