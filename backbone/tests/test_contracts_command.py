"""`manage.py contracts`: every registered contract, a JSON Schema for each, and `check` against
the committed snapshots (contracts/). `check` and `snapshot` run as `make lint` runs them, in a
`manage.py` subprocess, whose registry holds the shop's contracts and no test's probes."""

import json
import subprocess
import uuid
from decimal import Decimal
from io import StringIO
from pathlib import Path

import jsonschema
import pytest
from django.conf import settings
from django.core.management import call_command

from backbone.testing.processes import python_argv
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


def _contracts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_argv("manage.py", "contracts", *args),
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_passes_on_the_committed_snapshots() -> None:
    result = _contracts("check")

    assert result.returncode == 0, result.stderr
    assert f"{len(SHOP_CONTRACTS)} contracts match their snapshots" in result.stdout
    committed = {path.name for path in (Path(settings.BASE_DIR) / "contracts").glob("*.schema.json")}
    assert committed >= {f"{name}.v1.schema.json" for name in SHOP_CONTRACTS}


def _edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def test_check_fails_on_breaking_changes_and_stale_snapshots_one_line_each(tmp_path: Path) -> None:
    assert _contracts("snapshot", "--dir", str(tmp_path)).returncode == 0
    # The snapshots stand for the last release; the code "changed" since: it lost a field
    # (a snapshot with one more), changed a type, and (compatibly) reworded a description.
    _edit(
        tmp_path / "stock.StockLevelChanged.v1.schema.json",
        lambda s: s["properties"].update(warehouse={"type": "string", "title": "Warehouse"}),
    )
    _edit(
        tmp_path / "orders.OrderRequested.v1.schema.json",
        lambda s: s["$defs"]["OrderLine"]["properties"]["quantity"].update(type="string"),
    )
    _edit(tmp_path / "payments.PaymentFailed.v1.schema.json", lambda s: s.update(description="older words"))

    result = _contracts("check", "--dir", str(tmp_path))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    upcaster = "keep v1 as it was and declare version=2 with an upcaster from v1"
    assert lines[:-1] == [
        f"orders.OrderRequested v1: field lines[].quantity: type changed from string to integer; "
        f"old readers or old records of v1 break: {upcaster}",
        "payments.PaymentFailed v1: snapshot is stale (a compatible change): "
        "run `manage.py contracts snapshot`",
        f"stock.StockLevelChanged v1: field warehouse: removed (or renamed); "
        f"old readers or old records of v1 break: {upcaster}",
    ]
    assert lines[-1] == "CommandError: 3 contract problem(s); docs/backbone.md, Changing a contract"

    # `snapshot` refuses to write a breaking change over the last release's snapshot.
    refused = _contracts("snapshot", "--dir", str(tmp_path))
    assert refused.returncode == 1
    assert "2 contract(s) with breaking changes: nothing written" in refused.stderr
    assert "older words" in (tmp_path / "payments.PaymentFailed.v1.schema.json").read_text()


def test_snapshot_brings_a_stale_snapshot_up_to_date(tmp_path: Path) -> None:
    assert _contracts("snapshot", "--dir", str(tmp_path)).returncode == 0
    _edit(tmp_path / "stock.StockReserved.v1.schema.json", lambda s: s.update(title="Older"))
    assert _contracts("check", "--dir", str(tmp_path)).returncode == 1

    written = _contracts("snapshot", "--dir", str(tmp_path))

    assert written.stdout.strip() == f"wrote {tmp_path / 'stock.StockReserved.v1.schema.json'}"
    assert _contracts("check", "--dir", str(tmp_path)).returncode == 0


def test_list_is_the_default_and_every_subcommand_has_help() -> None:
    result = _contracts("--help")

    assert result.returncode == 0
    for subcommand in ("list", "snapshot", "check"):
        assert subcommand in result.stdout
    assert _contracts("list").stdout == _contracts().stdout
