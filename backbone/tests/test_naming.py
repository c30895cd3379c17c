"""One naming style across the contexts, read from what Django and the consumer runner see: an
API class is `<Noun>...View`, a handler is `on_<event>` (`on_order_confirmed`)."""

import re

from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from backbone.subscriptions import subscriptions

API_CLASS = re.compile(r"(?:[A-Z][a-z]+)+View")


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def view_classes(patterns: list[URLPattern | URLResolver]) -> set[type]:
    found: set[type] = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found |= view_classes(pattern.url_patterns)
        elif getattr(pattern.callback, "view_class", None) is not None:
            found.add(pattern.callback.view_class)
    return found


def context_handlers() -> list[tuple[str, str]]:
    """(handler name, event class name) of every subscription in an app's handlers.py."""
    modules = {f"{app.name}.handlers" for app in apps.get_app_configs()}
    return [
        (sub.handler.__name__, sub.event_type.__name__)
        for context in subscriptions.contexts()
        for subs in subscriptions.for_context(context).values()
        for sub in subs
        if sub.handler.__module__ in modules
    ]


def test_every_api_class_of_a_context_is_named_noun_view() -> None:
    api_classes = {
        cls for cls in view_classes(get_resolver().url_patterns) if cls.__module__.endswith(".api")
    }

    assert len(api_classes) >= 6  # orders' four, Stock's receipts, Shipments' dispatch
    assert sorted(cls.__qualname__ for cls in api_classes if not API_CLASS.fullmatch(cls.__qualname__)) == []


def test_every_handler_is_named_on_its_event() -> None:
    handlers = context_handlers()

    assert len(handlers) >= 10
    assert [name for name, event in handlers if name != f"on_{snake_case(event)}"] == []
