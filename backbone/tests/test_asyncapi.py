"""The AsyncAPI document: generated from the contracts, committed as docs/asyncapi.yaml, served
at /api/asyncapi/ by the web process as the Procfile starts it, and valid for the official
AsyncAPI parser (npm's @asyncapi/parser, run by node through scripts/asyncapi-validate.mjs).

The parser is installed by `scripts/services.sh npm` (part of `tools`), which the fixture runs:
it returns at once when the pinned version is there.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings
from django.core.management import CommandError, call_command

from backbone.asyncapi import document, rendered
from backbone.catalog import event_types
from backbone.contracts import registry
from backbone.subscriptions import subscriptions
from orders.tests.test_long_polls import Web

ROOT = Path(settings.BASE_DIR)
COMMITTED = ROOT / "docs" / "asyncapi.yaml"


@pytest.fixture(scope="module")
def node_path() -> str:
    install = subprocess.run(
        ["scripts/services.sh", "npm"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stdout + install.stderr
    services = Path(os.environ.get("SHOP_SERVICES_DIR") or ROOT / ".services")
    return str(services.resolve() / "npm" / "node_modules")


def validate(node_path: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", "scripts/asyncapi-validate.mjs", *map(str, files)],
        cwd=ROOT,
        env={**os.environ, "NODE_PATH": node_path},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    server = Web(tmp_path / "web.log", workers=1)
    yield server
    server.stop()


def test_the_committed_document_is_what_the_contracts_generate() -> None:
    assert COMMITTED.read_text() == rendered(), (
        "run `manage.py contracts asyncapi` and commit docs/asyncapi.yaml"
    )
    call_command("contracts", "asyncapi", "--check")


def test_check_fails_on_a_stale_file_and_the_command_rewrites_it(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(COMMITTED.read_text().replace("OrderRequested", "OrderAsked"))
    with pytest.raises(CommandError, match="is stale"):
        call_command("contracts", "asyncapi", "--check", "--output", str(stale))
    call_command("contracts", "asyncapi", "--output", str(stale))
    call_command("contracts", "asyncapi", "--check", "--output", str(stale))


def test_the_committed_document_is_valid_asyncapi_3(node_path: str) -> None:
    result = validate(node_path, COMMITTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid AsyncAPI 3.0.0" in result.stdout


def test_the_parser_refuses_a_broken_document(node_path: str, tmp_path: Path) -> None:
    # The check above means something: a dangling reference is an error for the same script.
    broken = tmp_path / "broken.yaml"
    broken.write_text(COMMITTED.read_text().replace("#/components/messageTraits/cloudEvents", "#/nowhere"))
    result = validate(node_path, broken)
    assert result.returncode == 1
    assert "invalid-ref" in result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_the_web_process_serves_the_document_to_anyone(node_path: str, web: Web, tmp_path: Path) -> None:
    response = httpx.get(f"{web.url}/api/asyncapi/", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == COMMITTED.read_text()
    served = tmp_path / "served.yaml"
    served.write_text(response.text)
    result = validate(node_path, served)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_contract_is_a_message_on_its_topic_with_the_cloudevents_headers() -> None:
    spec = document()
    shop_types = {c.type_name for c in registry.all() if c.__module__ == f"{c.context}.events"}
    assert len(shop_types) == 12  # 4 orders, 4 stock, 2 payments, 2 shipments
    assert set(spec["components"]["messages"]) == shop_types
    for contract in registry.all():
        if contract.type_name not in shop_types:
            continue
        message = spec["components"]["messages"][contract.type_name]
        assert message["traits"] == [{"$ref": "#/components/messageTraits/cloudEvents"}]
        assert message["payload"]["required"] == contract.model_json_schema()["required"]
        channel = spec["channels"][contract.topic.replace(".", "-")]
        assert channel["address"] == contract.topic
        assert channel["messages"][contract.__name__] == {
            "$ref": f"#/components/messages/{contract.type_name}"
        }
        # The example is a payload the contract itself accepts.
        contract.model_validate(message["examples"][0]["payload"])
    headers = spec["components"]["messageTraits"]["cloudEvents"]["headers"]["properties"]
    for header in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"):
        assert header in headers
    for header in ("ce_correlationid", "ce_causationid", "ce_dataversion", "ce_traceparent", "traceparent"):
        assert header in headers


def test_each_context_sends_on_its_topics_and_receives_what_it_subscribes_to() -> None:
    operations = yaml.safe_load(rendered())["operations"]
    assert operations["stock.send.stock-levels"]["action"] == "send"
    for facts in event_types():
        send = operations[f"{facts.contract.context}.send.{facts.topic.name.replace('.', '-')}"]
        assert {
            "$ref": f"#/channels/{facts.topic.name.replace('.', '-')}/messages/{facts.contract.__name__}"
        } in send["messages"]
    for context in ("orders", "stock", "payments", "shipments"):
        for type_name, subs in subscriptions.for_context(context).items():
            contract = registry.get(type_name)
            receive = operations[f"{context}.receive.{contract.topic.replace('.', '-')}"]
            assert receive["action"] == "receive"
            assert receive["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": [context]}
            assert all(sub.name in receive["description"] for sub in subs)
