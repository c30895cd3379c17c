"""`manage.py seed_demo`: the demo catalog and users, idempotently."""

import io

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from outbox.models import OutboxRecord
from shop.management.commands.seed_demo import CUSTOMER, PRODUCTS, STAFF

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seeding_twice_registers_each_product_once_and_prints_working_credentials() -> None:
    first, second = seed(), seed()

    levels = OutboxRecord.objects.filter(event_type="stock.StockLevelChanged")
    assert sorted(levels.values_list("key", flat=True)) == sorted(product.sku for product in PRODUCTS)
    assert first == second  # same credentials, same tokens
    for user in (STAFF, CUSTOMER):
        assert f"{user.username:6} password {user.password}" in first
        assert authenticate(username=user.username, password=user.password) is not None
    assert authenticate(username=STAFF.username, password=STAFF.password).is_staff
    assert not authenticate(username=CUSTOMER.username, password=CUSTOMER.password).is_staff
