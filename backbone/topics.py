"""The fixed topics, their single writer and how they are provisioned.

Every topic has exactly one writing context (the single writer principle); `emit()` and a
system check enforce it. Dead letters of a topic go to `<topic>.dlq`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    owner: str
    key: str
    compacted: bool = False

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.name}.dlq"


TOPICS: dict[str, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec("orders", owner="orders", key="order id"),
        TopicSpec("stock.reservations", owner="stock", key="order id"),
        # Latest level per sku is what readers need, so the log may be compacted.
        TopicSpec("stock.levels", owner="stock", key="sku", compacted=True),
        TopicSpec("payments", owner="payments", key="order id"),
        TopicSpec("shipments", owner="shipments", key="order id"),
    )
}

CONTEXTS: frozenset[str] = frozenset(spec.owner for spec in TOPICS.values())


class TopicOwnershipError(Exception):
    """A context tried to write a topic that another context owns."""


def owner_of(topic: str) -> str:
    try:
        return TOPICS[topic].owner
    except KeyError:
        raise TopicOwnershipError(f"unknown topic {topic!r}; known topics: {sorted(TOPICS)}") from None


def ensure_writer(topic: str, context: str) -> None:
    owner = owner_of(topic)
    if owner != context:
        raise TopicOwnershipError(
            f"context {context!r} may not write topic {topic!r}: its single writer is {owner!r}"
        )
