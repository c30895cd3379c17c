"""The import rules of the architecture (pyproject.toml's import-linter contracts, run by
`make lint`): the tree keeps them, and an import that breaks one fails the check."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backbone", "outbox", "orders", "stock", "payments", "shipments", "shop", "config")
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")

CONTEXTS = "Contexts import each other only through <context>.events"
LAYERS = "Layers: config, shop, the contexts, outbox, backbone; each imports only those below it"


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
    for contract in (CONTEXTS, LAYERS):
        assert f"{contract} KEPT" in _unwrapped(result.stdout)


# A module, an import added to it that breaks a rule, the contract, and the import as reported.
BAD_IMPORTS = [
    ("stock/handlers.py", "from orders.models import Order", CONTEXTS, "stock.handlers -> orders.models"),
    ("orders/api.py", "from shipments import services", CONTEXTS, "orders.api -> shipments.services"),
    ("backbone/kafka.py", "from outbox import models", LAYERS, "backbone.kafka -> outbox.models"),
    ("backbone/admin.py", "from outbox import views", LAYERS, "backbone.admin -> outbox.views"),
    (
        "backbone/subscriptions.py",
        "from orders.events import OrderRequested",
        LAYERS,
        "backbone.subscriptions -> orders.events",
    ),
    ("outbox/relay.py", "from stock.models import StockLevel", LAYERS, "outbox.relay -> stock.models"),
    ("outbox/status.py", "from config import celery", LAYERS, "outbox.status -> config.celery"),
    ("orders/services.py", "from shop import apps", LAYERS, "orders.services -> shop.apps"),
    ("shop/apps.py", "from config import urls", LAYERS, "shop.apps -> config.urls"),
]


def test_an_import_across_the_rules_breaks_its_contract(tmp_path: Path) -> None:
    # One copy of the tree with every bad import at once: lint-imports reports each of them.
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for module, bad_import, _, _ in BAD_IMPORTS:
        with (tmp_path / module).open("a") as source:
            source.write(f"\n{bad_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    report = _unwrapped(result.stdout)
    for _, _, contract, reported in BAD_IMPORTS:
        assert f"{contract} BROKEN" in report
        assert f"- {reported} (l." in report, f"{reported} not reported:\n{report}"


def _unwrapped(report: str) -> str:
    """lint-imports wraps a long contract name at 80 columns."""
    return report.replace(" \n", " ")
