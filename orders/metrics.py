"""Orders' Prometheus metrics: orders placed (web) and how long an order takes to be decided
(the Orders consumer). Counted after the transaction commits, so a rolled-back change is not."""

from datetime import datetime

from django.utils import timezone
from prometheus_client import Counter, Histogram

PLACED = Counter("orders_placed", "Orders placed through the API (REQUESTED).")
DECISION = Histogram(
    "orders_decision_seconds",
    "Seconds from an order's placement (REQUESTED) to its final state, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)


def count_placed() -> None:
    PLACED.inc()


def observe_decision(outcome: str, placed_at: datetime) -> None:
    DECISION.labels(outcome.lower()).observe(max(0.0, (timezone.now() - placed_at).total_seconds()))
