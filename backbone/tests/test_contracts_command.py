"""`manage.py contracts`: every registered contract, and a JSON Schema for each."""

import json
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command

from orders.events import OrderLine, OrderRequested

SHOP_CONTRACTS = {
    "orders.OrderRequested", "orders.OrderValidated", "orders.OrderRejected", "orders.OrderConfirmed",
    "stock.StockReserved", "stock.StockReservationFailed", "stock.StockLevelChanged",
    "stock.StockReorderRequested", "payments.PaymentProcessed", "payments.PaymentFailed",
    "shipments.ShipmentPrepared", "shipments.ShipmentDispatched",
}  # fmt: skip


def test_lists_every_shop_contract_with_topic_and_key() -> None:
    out = StringIO()
    call_command("contracts", stdout=out)
    listed = {line.split()[0] for line in out.getvalue().splitlines()}
    assert listed >= SHOP_CONTRACTS
    assert "topic stock.levels" in next(
        line for line in out.getvalue().splitlines() if "StockLevelChanged" in line
    )


def test_writes_a_json_schema_that_accepts_events_and_rejects_bad_ones(tmp_path: Path) -> None:
    call_command("contracts", schemas=str(tmp_path), stdout=StringIO())
    written = {path.name.split(".v")[0] for path in tmp_path.glob("*.schema.json")}
    assert written >= SHOP_CONTRACTS

    schema = json.loads((tmp_path / "orders.OrderRequested.v1.schema.json").read_text())
    event = OrderRequested(
        order_id=uuid.uuid4(),
        customer_id=1,
        lines=(OrderLine(sku="KB-101", quantity=1, unit_price=Decimal("99.00")),),
        total=Decimal("99.00"),
    )
    jsonschema.validate(json.loads(event.to_json()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"order_id": str(uuid.uuid4()), "lines": [{"sku": "x", "quantity": 0}]}, schema)
