"""Receiver-driven routing: a context subscribes its handlers to the event types it cares about.

In a context's `handlers.py`::

    @subscribe(StockReserved)
    def validate_order(event: StockReserved, envelope: Envelope) -> None:
        ...

The consumer runner of that context (`manage.py consume orders`) reads the topics of the
subscribed types, runs each handler in one transaction with an inbox row, and skips the types
nobody subscribed to. The context is the installed app the handler belongs to (its label).

A view that only copies state out of events can take them a batch at a time, and write them
all in one statement instead of one round trip per event::

    @subscribe_batch(StockLevelChanged)
    def apply_stock_levels(items: Sequence[tuple[StockLevelChanged, Envelope]]) -> None:
        ...

The runner calls it once per polled batch with the new events of that type (redeliveries the
inbox already holds are left out), in offset order per partition, after the batch's per-event
handlers. When it raises, the runner applies the batch again one event at a time, calling it
with single items, so a poison event is retried and dead-lettered alone. Replays of dead
letters and parked records call it with one item too. A batch handler runs for many stories
at once, so it has no correlation or causation id: it must not emit events (emit() raises).
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .contracts import Event
from .envelope import Envelope
from .topics import acting_as, context_of

E = TypeVar("E", bound=Event)
Handler = Callable[[Any, Envelope], None]
BatchHandler = Callable[[Sequence[tuple[Any, Envelope]]], None]
BatchHandlerOf = Callable[[Sequence[tuple[E, Envelope]]], None]


@dataclass(frozen=True)
class Subscription:
    context: str
    event_type: type[Event]
    handler: Handler | BatchHandler
    batch: bool = False  # handler takes a sequence of (event, envelope) items

    @property
    def name(self) -> str:
        return f"{self.handler.__module__}.{self.handler.__qualname__}"

    def call(self, event: Event, envelope: Envelope) -> None:
        """Run a per-event handler (`batch` is False), as its context: what it emits must be its
        own app's events (backbone/topics.py)."""
        with acting_as(self.context):
            cast(Handler, self.handler)(event, envelope)  # `batch` says which signature it has

    def call_batch(self, items: Sequence[tuple[Event, Envelope]]) -> None:
        """Run a batch handler (`batch` is True) over (event, envelope) items."""
        with acting_as(self.context):
            cast(BatchHandler, self.handler)(items)  # `batch` says which signature it has


class SubscriptionRegistry:
    def __init__(self) -> None:
        self._by_context: dict[str, dict[str, list[Subscription]]] = defaultdict(lambda: defaultdict(list))

    def add(self, subscription: Subscription) -> None:
        handlers = self._by_context[subscription.context][subscription.event_type.type_name]
        if all(existing.name != subscription.name for existing in handlers):
            handlers.append(subscription)

    def contexts(self) -> list[str]:
        return sorted(self._by_context)

    def for_context(self, context: str) -> dict[str, list[Subscription]]:
        """Event type name -> the context's handlers for it (a routing table, read-only)."""
        return {type_name: list(subs) for type_name, subs in self._by_context.get(context, {}).items()}

    def topics_for(self, context: str) -> set[str]:
        return {subs[0].event_type.topic for subs in self._by_context.get(context, {}).values() if subs}


subscriptions = SubscriptionRegistry()


def subscribe(
    event_type: type[E], *, context: str | None = None
) -> Callable[[Callable[[E, Envelope], None]], Callable[[E, Envelope], None]]:
    """Register the decorated function as the handler of `event_type` for its context."""

    def decorator(handler: Callable[[E, Envelope], None]) -> Callable[[E, Envelope], None]:
        owner = context or context_of(handler.__module__)
        subscriptions.add(Subscription(context=owner, event_type=event_type, handler=handler))
        return handler

    return decorator


def subscribe_batch(
    event_type: type[E], *, context: str | None = None
) -> Callable[[BatchHandlerOf[E]], BatchHandlerOf[E]]:
    """Register the decorated function as a batch handler of `event_type` for its context:
    it receives the new events of that type of each batch at once (see the module docstring)."""

    def decorator(handler: BatchHandlerOf[E]) -> BatchHandlerOf[E]:
        owner = context or context_of(handler.__module__)
        subscriptions.add(Subscription(context=owner, event_type=event_type, handler=handler, batch=True))
        return handler

    return decorator
