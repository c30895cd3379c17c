"""The read path of the orders context: queries the API and the admin share."""

import uuid

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import QuerySet

from outbox.story import StoryEntry, story

from .models import Order, StockLevelView


def orders_visible_to(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    """Staff see every order; a customer only their own."""
    orders = Order.objects.prefetch_related("lines").order_by("-created_at")
    return orders if user.is_staff else orders.filter(customer_id=user.pk)


def order_visible_to(user: AbstractBaseUser | AnonymousUser, order_id: uuid.UUID) -> Order | None:
    return orders_visible_to(user).filter(id=order_id).first()


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
    return set(StockLevelView.objects.filter(sku__in=skus).values_list("sku", flat=True))


def order_story(order: Order) -> list[StoryEntry]:
    """The order's own events (keyed by its id) and those they caused, in the order they were
    written: never another order's, even one that shares its correlation id."""
    return story(order.correlation_id, subject=str(order.id))
