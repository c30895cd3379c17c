"""The read path of the orders context: queries the API and the admin share."""

import uuid
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from backbone.statements import FixedSelect
from outbox.story import StoryEntry, story

from .models import Order, OrderLine, StockLevelView


def orders_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff see every order; a customer only their own."""
    orders = Order.objects.prefetch_related("lines").order_by("-created_at")
    return orders if user.is_staff else orders.filter(customer_id=user.pk)


def order_visible_to(user: AbstractBaseUser | AnonymousUser, order_id: uuid.UUID) -> Order | None:
    """One order, if the user may see it; its lines come from `lines_of`.

    Fixed statements rather than a queryset and its prefetch: compiling the two querysets cost
    about 1.7 ms of CPU per read, the statements a tenth of that (psycopg prepares them). This is
    the read of every order the API answers with, and of each decided wait."""
    orders = _VISIBLE_ORDER([order_id, user.is_staff, user.pk])
    return orders[0] if orders else None


def lines_of(order_id: uuid.UUID) -> list[OrderLine]:
    """An order's lines, in the order they were placed (an order's lines never change)."""
    return _LINES([order_id])


_VISIBLE_ORDER = FixedSelect(Order, "WHERE id = %s AND (%s OR customer_id = %s)")
_LINES = FixedSelect(OrderLine, "WHERE order_id = %s ORDER BY id")
_LEVELS = FixedSelect(StockLevelView, "WHERE sku = ANY(%s)")


def order_state_visible_to(user: AbstractBaseUser | AnonymousUser, order_id: uuid.UUID) -> str | None:
    """Only the state: what a waiting request re-reads each time its doorbell rings.

    One fixed statement rather than a queryset: compiling the queryset cost more CPU than
    PostgreSQL's answer, on the read a thousand waiters repeat (psycopg prepares it)."""
    with connection.cursor() as cursor:
        cursor.execute(_STATE_SQL, [order_id, user.is_staff, user.pk])
        row = cursor.fetchone()
    return None if row is None else str(row[0])


_STATE_SQL = f"SELECT state FROM {Order._meta.db_table} WHERE id = %s AND (%s OR customer_id = %s)"


def catalog() -> QuerySet[StockLevelView]:
    return StockLevelView.objects.order_by("sku")


def known_skus(skus: list[str]) -> set[str]:
    return set(stock_levels_of(skus))


def stock_levels_of(skus: Sequence[str]) -> dict[str, StockLevelView]:
    """Orders' view of these skus' levels, by sku (an unknown sku is absent): the checks of
    every order placed, so a fixed statement."""
    return {level.sku: level for level in _LEVELS([list(skus)])}


def order_story(order: Order) -> list[StoryEntry]:
    """The order's own events (keyed by its id) and those they caused, in the order they were
    written: never another order's, even one that shares its correlation id."""
    return story(order.correlation_id, subject=str(order.id))
