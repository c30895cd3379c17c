"""Outbox write overhead: the real order placement (`orders.services.place_order`) with the
outbox, against the same transaction without it (no event built, no outbox row written).

Both variants run in alternating blocks on the same connection, so drift in the machine's
load hits both alike. The ratio of the median transaction times is the overhead.
"""

import importlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from decimal import Decimal
from typing import Any
from unittest import mock

from bench.harness import Result, percentile, progress, skipped
from bench.run import BenchContext

NAME = "outbox overhead"
TARGET_RATIO = 1.15
BLOCK = 25
SKUS = 40


def run(context: BenchContext) -> list[Result]:
    try:
        from orders import services
    except ImportError as error:
        return [skipped(NAME, f"orders.services is not importable yet ({error})")]
    if not hasattr(services, "place_order"):
        return [skipped(NAME, "orders.services.place_order does not exist yet")]

    customer = _customer()
    _seed_stock_view()
    rng = random.Random(11)

    def place() -> None:
        lines = [
            services.LineRequest(sku=f"BENCH-{index:03d}", quantity=rng.randint(1, 3))
            for index in rng.sample(range(SKUS), rng.randint(1, 4))
        ]
        services.place_order(customer=customer, lines=lines, payment_token="tok_bench")

    count = context.mode.overhead_transactions
    progress(
        "placing %d orders with the outbox and %d without, in alternating blocks of %d", count, count, BLOCK
    )
    for _ in range(BLOCK):  # warm-up: connection, prepared plans, caches
        place()
        with _without_outbox(services):
            place()
    with_outbox: list[float] = []
    without_outbox: list[float] = []
    while len(with_outbox) < count:
        with_outbox.extend(_timed(place, BLOCK, nullcontext()))
        without_outbox.extend(_timed(place, BLOCK, _without_outbox(services)))

    with_ms = _median(with_outbox) * 1000
    without_ms = _median(without_outbox) * 1000
    ratio = with_ms / without_ms
    progress("placement: %.2f ms with the outbox, %.2f ms without (x%.3f)", with_ms, without_ms, ratio)
    return [
        Result(
            NAME,
            f"place_order median ms ({count} txns)",
            with_ms,
            "ms",
            baseline=without_ms,
            ratio=ratio,
            target=f"<= {TARGET_RATIO:.2f}x (+{TARGET_RATIO - 1:.0%})",
            met=ratio <= TARGET_RATIO,
            details={
                "mean_with_ms": sum(with_outbox) / len(with_outbox) * 1000,
                "mean_without_ms": sum(without_outbox) / len(without_outbox) * 1000,
                "transactions_each": len(with_outbox),
            },
        )
    ]


def _timed(place: Callable[[], None], count: int, variant: AbstractContextManager[Any]) -> list[float]:
    timings = []
    with variant:
        for _ in range(count):
            started = time.perf_counter()
            place()
            timings.append(time.perf_counter() - started)
    return timings


@contextmanager
def _without_outbox(services: Any) -> Iterator[None]:
    """The same placement with the outbox cut out: emit() does nothing, and the event's lines
    are not built. Patched where place_order looks them up (orders.services is a package)."""
    placing = importlib.import_module(services.place_order.__module__)
    lines = next((name for name in ("contract_lines", "_contract_lines") if hasattr(placing, name)), None)
    skip_event_lines = mock.patch.object(placing, lines, _no_lines) if lines else nullcontext()
    with mock.patch.object(placing, "emit", _no_emit), skip_event_lines:
        yield


def _no_emit(event: object) -> None:
    return None


def _no_lines(order: object) -> tuple[()]:
    return ()


def _median(samples: list[float]) -> float:
    return percentile(samples, 50)


def _customer() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(
        username="bench-overhead", defaults={"email": "b@example.com"}
    )
    return user


def _seed_stock_view() -> None:
    """Orders' view of stock, with far more available than the benchmark can order."""
    from orders.models import StockLevelView

    StockLevelView.objects.bulk_create(
        [
            StockLevelView(
                sku=f"BENCH-{index:03d}",
                name=f"Bench product {index}",
                price=Decimal("9.99") + index,
                available=10**9,
                version=1,
            )
            for index in range(SKUS)
        ],
        ignore_conflicts=True,
    )
