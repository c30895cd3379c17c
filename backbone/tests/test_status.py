"""`manage.py status` against the real relay and a real consumer, then with one stopped, then
without Kafka; and the admin's "Backbone overview" page that renders the same facts."""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import Client

from backbone.conf import backbone_settings
from backbone.models import ProcessHeartbeat
from backbone.testing import ShopProcesses, database_url, free_port, python_argv, wait_for
from outbox.emit import emit
from stock.events import StockLevelChanged

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

FAST = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "RELAY_POLL_INTERVAL_SECONDS": "0.5",
    "STATUS_HEARTBEAT_STALE_SECONDS": "3",
}


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
        "PYTHONUNBUFFERED": "1",
        **FAST,
        **extra,
    }


def status(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_argv("manage.py", "status", *args),
        cwd=settings.BASE_DIR,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_json() -> dict[str, Any]:
    answer = status("--json")
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def group(data: dict[str, Any], context: str) -> dict[str, Any]:
    return next(g for g in data["groups"] if g["context"] == context)


@pytest.fixture
def processes(kafka_topics: list[str], tmp_path: Any) -> Iterator[ShopProcesses]:
    shop = ShopProcesses(env=_env(), log_dir=tmp_path)
    shop.add("relay", python_argv("manage.py", "relay"))
    shop.add("relay-2", python_argv("manage.py", "relay"))  # stands by
    shop.add("consume-orders", python_argv("manage.py", "consume", "orders"))
    shop.start()
    try:
        yield shop
    finally:
        shop.stop()


def test_status_shows_the_leader_the_members_and_zero_lag_then_names_a_stopped_consumer(
    processes: ShopProcesses,
) -> None:
    with transaction.atomic():
        emit(
            StockLevelChanged(
                sku="ST-1",
                name="Status probe",
                price=Decimal("1.00"),
                on_hand=5,
                reserved=0,
                available=5,
                version=1,
            )
        )

    def healthy() -> dict[str, Any] | None:
        processes.assert_running()
        data = status_json()
        orders = group(data, "orders")
        leader = data["relay"]["leader"]
        ready = leader and data["relay"]["standbys"] and orders["members"]
        if ready and orders["lag"] == 0 and orders["last_handled_at"]:
            return data
        return None

    data = wait_for(healthy, timeout=60, interval=0.5, what="status to show the relay and orders caught up")
    leader, member = data["relay"]["leader"], group(data, "orders")["members"][0]
    relays = {processes.processes[name].process.pid for name in ("relay", "relay-2")}
    assert {leader["pid"], *(standby["pid"] for standby in data["relay"]["standbys"])} == relays
    assert data["relay"]["standbys"][0]["state"] == "standby"
    assert data["relay"]["rows_waiting"] == 0
    assert member["pid"] == processes.processes["consume-orders"].process.pid
    assert "stock.levels/0" in member["facts"]["partitions"]
    assert data["seconds"] < 2

    text = status()
    assert f"leader   {leader['host']} pid {leader['pid']}" in text.stdout
    assert "consumer orders (group " in text.stdout
    assert status("--check", "--only", "orders").returncode == 0
    assert status("--check", "--only", "relay").returncode == 0

    processes.kill("consume-orders")  # no clean exit: its heartbeat row has to go stale
    checked = wait_for(
        lambda: (answer := status("--check", "--only", "orders")).returncode != 0 and answer,
        timeout=15,
        interval=0.5,
        what="status --check to notice the stopped consumer",
    )
    assert checked.returncode == 1
    assert "consumer orders: no live member" in checked.stdout
    assert status("--check", "--only", "relay").returncode == 0  # the relay is still fine


def test_status_answers_quickly_and_says_so_while_kafka_is_unreachable(kafka_topics: list[str]) -> None:
    unreachable = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    answer = status(KAFKA_BOOTSTRAP_SERVERS=unreachable)
    elapsed = time.monotonic() - started
    as_json = json.loads(status("--json", KAFKA_BOOTSTRAP_SERVERS=unreachable).stdout)

    assert answer.returncode == 0, answer.stderr
    assert f"Kafka unreachable at {unreachable}" in answer.stdout
    assert "lag ?" in answer.stdout
    checked = status("--check", "--only", "orders", KAFKA_BOOTSTRAP_SERVERS=unreachable)
    assert checked.returncode == 1
    assert f"Kafka unreachable at {unreachable}" in checked.stdout
    assert as_json["kafka_error"].startswith(f"Kafka unreachable at {unreachable}")
    assert as_json["seconds"] < 2  # collecting, without waiting out Kafka's retries
    assert elapsed < 10  # and the whole process, Python and Django start-up included, on a busy CI box


def test_a_stopped_process_removes_its_heartbeat(processes: ShopProcesses) -> None:
    wait_for(
        lambda: ProcessHeartbeat.objects.filter(role="consumer", name="orders").exists(),
        timeout=30,
        interval=0.2,
        what="the consumer's heartbeat",
    )
    processes.stop("consume-orders")
    assert not ProcessHeartbeat.objects.filter(role="consumer", name="orders").exists()


def test_the_backbone_overview_page_is_for_staff_only() -> None:
    user_model = get_user_model()
    staff = user_model.objects.create_user("status-staff", password="pw", is_staff=True, is_superuser=True)
    customer = user_model.objects.create_user("status-customer", password="pw")
    ProcessHeartbeat.objects.create(role="consumer", name="payments", host="h1", pid=4242, state="consuming")
    client = Client()

    client.force_login(customer)
    denied = client.get("/admin/backbone-overview/")
    assert denied.status_code in (302, 403)

    client.force_login(staff)
    page = client.get("/admin/backbone-overview/")
    assert page.status_code == 200
    html = page.content.decode()
    for context in ("orders", "stock", "payments", "shipments"):
        assert f"consumer {context}" in html
    assert "h1 pid 4242" in html
    assert "/admin/backbone/deadletter/?" in html
    assert "/admin/backbone/parkedrecord/?" in html
