"""The import rules of the architecture (pyproject.toml's import-linter contracts, run by
`make lint`): the tree keeps them, and an import that breaks one fails the check."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backbone", "outbox", "orders", "stock", "payments", "shipments", "shop")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")

CONTEXTS = "Contexts import each other only through <context>.events"
BACKBONE = "backbone imports no context and not outbox"
OUTBOX = "outbox imports no context"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    for contract in (CONTEXTS, BACKBONE, OUTBOX):
        assert f"{contract} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("stock/handlers.py", "from orders.models import Order", CONTEXTS),
        ("orders/api.py", "from shipments import services", CONTEXTS),
        ("backbone/kafka.py", "from outbox.models import OutboxRecord", BACKBONE),
        ("backbone/subscriptions.py", "from orders.events import OrderRequested", BACKBONE),
        ("outbox/relay.py", "from stock.models import StockLevel", OUTBOX),
    ],
)
def test_an_import_across_the_rules_breaks_its_contract(
    tmp_path: Path, module: str, forbidden_import: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{forbidden_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
