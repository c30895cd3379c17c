"""The topics each app publishes, declared on its AppConfig, and their single writer.

An app that publishes events declares its topics on its `AppConfig`::

    class OrdersConfig(AppConfig):
        name = "orders"
        publishes = (Topic("orders", key="order id"),)

The declaring app (its label) is the topic's one writer, the single writer principle: its
contracts (`<app>/events.py`) name those topics, a system check refuses a contract whose topic
another app declares, and emit() refuses to write another app's topic. The ACLs, topic
provisioning, the AsyncAPI document and status are all derived from these declarations. Dead
letters of a topic go to `<topic>.dlq`.
"""

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import AppConfig, apps
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class Topic:
    """A topic an app publishes. `key` says what the record key is ("order id"); `owner` is the
    declaring app's label, filled in from the app registry."""

    name: str
    key: str
    compacted: bool = False
    owner: str = ""

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.name}.dlq"


class TopicOwnershipError(Exception):
    """An app tried to write a topic that another app declares, or one nobody declares."""


class TopicDeclarationError(Exception):
    """Two apps declare one topic, or an app's `publishes` is not a sequence of Topic."""


def publishes(app_config: AppConfig) -> tuple[Topic, ...]:
    """The topics `app_config` declares, each with the app as its owner."""
    declared: Any = getattr(app_config, "publishes", ())
    if not all(isinstance(topic, Topic) for topic in declared):
        raise TopicDeclarationError(f"{type(app_config).__name__}.publishes must be a sequence of Topic")
    return tuple(dataclasses.replace(topic, owner=app_config.label) for topic in declared)


@cache
def topics() -> dict[str, Topic]:
    """Every declared topic by name, from the installed apps (in INSTALLED_APPS order)."""
    found: dict[str, Topic] = {}
    for app_config in apps.get_app_configs():
        for topic in publishes(app_config):
            if topic.name in found:
                raise TopicDeclarationError(
                    f"topic {topic.name!r} is declared by both {found[topic.name].owner!r} and "
                    f"{topic.owner!r}: a topic has one writer"
                )
            found[topic.name] = topic
    return found


def publishing_contexts() -> frozenset[str]:
    """The labels of the apps that publish at least one topic."""
    return frozenset(topic.owner for topic in topics().values())


@receiver(setting_changed)
def _forget_topics(*, setting: str, **kwargs: Any) -> None:
    if setting == "INSTALLED_APPS":
        topics.cache_clear()


def owner_of(topic: str) -> str:
    try:
        return topics()[topic].owner
    except KeyError:
        raise TopicOwnershipError(f"unknown topic {topic!r}; known topics: {sorted(topics())}") from None


def ensure_writer(topic: str, context: str) -> None:
    owner = owner_of(topic)
    if owner != context:
        raise TopicOwnershipError(
            f"context {context!r} may not write topic {topic!r}: its single writer is {owner!r}"
        )


def context_of(module: str) -> str:
    """The label of the installed app that `module` (a dotted name) belongs to."""
    app_config = apps.get_containing_app_config(module)
    if app_config is None:
        raise LookupError(f"{module} is not part of an installed app: add its app to INSTALLED_APPS")
    return app_config.label


# The app whose handlers a consumer process runs: what they emit must be that app's own events.
_acting_context: ContextVar[str | None] = ContextVar("acting_context", default=None)


def acting_context() -> str | None:
    """The installed app whose handler runs, if one does. A subscription under a name that is no
    app's label (a test's throw-away consumer group) acts for nobody in particular."""
    context = _acting_context.get()
    if context is None:
        return None
    try:
        return apps.get_app_config(context).label
    except LookupError:
        return None


@contextmanager
def acting_as(context: str) -> Iterator[None]:
    """Run a block as `context` (the consumer runner runs its handlers so): emit() refuses an
    event of another app's contract there."""
    token = _acting_context.set(context)
    try:
        yield
    finally:
        _acting_context.reset(token)
