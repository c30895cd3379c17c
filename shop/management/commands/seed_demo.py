"""`manage.py seed_demo`: the demo catalog and users, idempotently.

Products are registered through Stock's service, so their `StockLevelChanged` events flow to
Orders' view (the catalog at /api/products/) like any other stock change. Running it again
changes nothing and prints the same credentials.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from backbone.preflight import ServiceUnavailable, check_postgres
from stock.services import register_product


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    price: str
    on_hand: int
    reorder_point: int
    reorder_quantity: int


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    email: str
    staff: bool = False


PRODUCTS = (
    DemoProduct("KB-101", "Mechanical keyboard", "89.00", on_hand=100, reorder_point=10, reorder_quantity=50),
    DemoProduct("MS-202", "Wireless mouse", "29.50", on_hand=200, reorder_point=20, reorder_quantity=100),
    DemoProduct("MN-303", "27-inch monitor", "249.00", on_hand=30, reorder_point=5, reorder_quantity=20),
    DemoProduct("CB-404", "USB-C cable", "9.90", on_hand=500, reorder_point=50, reorder_quantity=200),
    # Little stock: the out-of-stock demo, and a reorder request when it runs out.
    DemoProduct("LE-505", "Limited edition mug", "14.00", on_hand=1, reorder_point=0, reorder_quantity=10),
)
SCARCE_SKU = "LE-505"

STAFF = DemoUser("staff", "staff-demo-password", "staff@shop.example", staff=True)
CUSTOMER = DemoUser("alice", "alice-demo-password", "alice@shop.example")
OTHER_CUSTOMER = DemoUser("bob", "bob-demo-password", "bob@shop.example")
USERS = (STAFF, CUSTOMER, OTHER_CUSTOMER)


class Command(BaseCommand):
    help = "Load the demo catalog (through Stock, so Orders' view follows) and the demo users; idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            check_postgres()
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        for product in PRODUCTS:
            register_product(
                sku=product.sku,
                name=product.name,
                price=Decimal(product.price),
                on_hand=product.on_hand,
                reorder_point=product.reorder_point,
                reorder_quantity=product.reorder_quantity,
            )
        self.stdout.write(f"catalog: {len(PRODUCTS)} products ({', '.join(p.sku for p in PRODUCTS)})")
        for user in USERS:
            token = ensure_user(user)
            role = "staff   " if user.staff else "customer"
            self.stdout.write(f"{role} {user.username:6} password {user.password:22} token {token}")


def ensure_user(demo: DemoUser) -> str:
    """Create or reset the demo user (so the printed password is right); answers its API token."""
    user, _ = get_user_model().objects.get_or_create(username=demo.username)
    user.email = demo.email
    user.is_staff = user.is_superuser = demo.staff
    if not user.check_password(demo.password):
        user.set_password(demo.password)
    user.save()
    token, _ = Token.objects.get_or_create(user=user)
    key: str = token.key
    return key
