"""Prometheus metrics of the real processes: gunicorn's /metrics (two workers, multiprocess
mode), the relay's and each consumer's --metrics-port, scraped while orders flow."""

import os
import platform
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from backbone.models import DeadLetter, DeadLetterReason
from backbone.testing import wait_for
from backbone.testing.metrics import Samples, scrape, total
from orders.tests.conftest import Shop
from orders.tests.test_e2e import Customer, new_product

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


def present(samples: Samples, name: str) -> bool:
    return any(sample == name for sample, _ in samples)


def endpoint(shop: Shop, process: str) -> str:
    if process == "web":
        return f"{shop.base_url}/metrics"
    return f"http://127.0.0.1:{shop.metrics_ports[process]}/metrics"


def scrape_all(shop: Shop) -> dict[str, Samples]:
    names = ["web", "relay", "consume-orders", "consume-stock", "consume-stock-2", "consume-payments"]
    return {name: scrape(endpoint(shop, name)) for name in names}


def moved(before: dict[str, Samples], after: dict[str, Samples]) -> Callable[..., float]:
    def delta(process: str, name: str, **labels: str) -> float:
        """The change of `name` over the process's members (Stock runs two consumers)."""
        members = [member for member in after if member == process or member.startswith(f"{process}-")]
        return sum(total(after[m], name, **labels) - total(before[m], name, **labels) for m in members)

    return delta


def test_each_endpoint_reports_values_that_move_as_orders_flow(live_shop: Shop) -> None:
    alice = Customer(live_shop, f"metrics-{uuid.uuid4().hex[:6]}")
    sku = new_product(alice, on_hand=10)
    live_shop.wait_until_quiet()
    before = scrape_all(live_shop)

    confirmed = alice.place_ok((sku, 1))
    declined = alice.place_ok((sku, 1), token="tok_declined")
    assert alice.final(confirmed)["state"] == "CONFIRMED"
    assert alice.final(declined)["state"] == "REJECTED"
    live_shop.wait_until_quiet()

    def settled() -> dict[str, Samples] | None:
        # The lag gauges are refreshed once a second; the decision is observed after its commit.
        after = scrape_all(live_shop)
        decided = moved(before, after)("consume-orders", "orders_decision_seconds_count") >= 2
        lag = "backbone_consumer_lag_records"
        lags_known = all(
            any(present(after[name], lag) for name in after if name.startswith(group))
            for group in ("consume-orders", "consume-stock", "consume-payments")
        )
        orders_lag_topics = {dict(labels)["topic"] for name, labels in after["consume-orders"] if name == lag}
        lags_known = lags_known and {"payments", "stock.reservations"} <= orders_lag_topics
        return after if decided and lags_known else None

    after = wait_for(settled, timeout=30, interval=0.5, what="the metrics to move")
    delta = moved(before, after)

    # gunicorn: both orders, whichever of the two workers took them; nothing waits, nothing is dead.
    assert delta("web", "orders_placed_total") == 2
    assert total(after["web"], "outbox_rows_waiting") == 0
    assert total(after["web"], "outbox_oldest_waiting_age_seconds") == 0
    assert present(after["web"], "backbone_dead_letters_pending")

    # The relay: OrderRequested x2, OrderValidated x2, OrderConfirmed, OrderRejected on `orders`,
    # one latency per record published.
    assert delta("relay", "outbox_records_published_total", topic="orders") == 6
    published = delta("relay", "outbox_records_published_total")
    assert published >= 10  # and the answers of stock, payments, shipments
    assert delta("relay", "outbox_publish_latency_seconds_count") == published
    assert total(after["relay"], "outbox_rows_waiting") == 0

    # The consumers: records handled per group, batches timed, lag per partition known and zero.
    for consumer in ("consume-orders", "consume-stock", "consume-payments"):
        assert delta(consumer, "backbone_consumer_records_total", outcome="handled") >= 2, consumer
        assert delta(consumer, "backbone_consumer_batch_duration_seconds_count") >= 1, consumer
        members = [after[name] for name in after if name == consumer or name.startswith(f"{consumer}-")]
        assert any(present(samples, "backbone_consumer_lag_records") for samples in members), consumer
        assert sum(total(samples, "backbone_consumer_lag_records") for samples in members) == 0, consumer
    assert delta("consume-payments", "backbone_consumer_records_total", outcome="handled") == 2
    lag_topics = {
        dict(labels)["topic"]
        for name, labels in after["consume-orders"]
        if name == "backbone_consumer_lag_records"
    }
    assert {"payments", "stock.reservations"} <= lag_topics

    # Orders: one decision of each outcome, REQUESTED to final.
    assert delta("consume-orders", "orders_decision_seconds_count", outcome="confirmed") == 1
    assert delta("consume-orders", "orders_decision_seconds_count", outcome="rejected") == 1
    assert delta("consume-orders", "orders_decision_seconds_sum") > 0


def gunicorn_workers(shop: Shop) -> set[int]:
    """The pids of the web process's workers: the children of gunicorn's master."""
    master = shop.processes.processes["web"].process
    assert master is not None
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[1]) == master.pid:
            children.add(int(stat.parent.name))
    return children


def test_web_metrics_add_up_every_worker_and_outlive_a_worker_restart(live_shop: Shop) -> None:
    """Each worker counts what it served; /metrics, answered by any one worker, reports the sum,
    and what a worker counted is still there after gunicorn replaced it."""
    alice = Customer(live_shop, f"metrics-{uuid.uuid4().hex[:6]}")
    sku = new_product(alice, on_hand=10)
    before = total(scrape(endpoint(live_shop, "web")), "orders_placed_total")
    order_id = alice.place_ok((sku, 1))
    assert total(scrape(endpoint(live_shop, "web")), "orders_placed_total") == before + 1
    old_workers = gunicorn_workers(live_shop)
    assert len(old_workers) == 2
    for pid in old_workers:
        os.kill(pid, signal.SIGTERM)  # gunicorn starts a new worker for each
    wait_for(
        lambda: len(workers := gunicorn_workers(live_shop)) == 2 and not workers & old_workers,
        timeout=30,
        what="gunicorn to replace both workers",
    )
    scrapes = [total(scrape(endpoint(live_shop, "web")), "orders_placed_total") for _ in range(3)]
    assert scrapes == [before + 1] * 3
    assert alice.final(order_id)["state"] == "CONFIRMED"


def test_rows_waiting_and_their_age_show_while_the_relay_is_down(live_shop: Shop) -> None:
    alice = Customer(live_shop, f"metrics-{uuid.uuid4().hex[:6]}")
    sku = new_product(alice, on_hand=10)
    live_shop.processes.stop("relay")
    try:
        order_id = alice.place_ok((sku, 1))
        waiting = wait_for(
            lambda: (
                (s := scrape(endpoint(live_shop, "web")))
                and total(s, "outbox_oldest_waiting_age_seconds") > 0.2
                and s
            ),
            timeout=10,
            what="the oldest row to age",
        )
        assert total(waiting, "outbox_rows_waiting") == 1
    finally:
        live_shop.processes.start("relay")
    assert alice.final(order_id)["state"] == "CONFIRMED"
    wait_for(
        lambda: total(scrape(endpoint(live_shop, "relay")), "outbox_rows_waiting") == 0,
        timeout=30,
        what="the relay to report nothing waiting",
    )


def test_pending_dead_letters_are_counted_per_consumer_group(live_shop: Shop) -> None:
    group = f"{live_shop.namespace}payments"
    dead_letter = DeadLetter.objects.create(
        consumer_group=group,
        context="payments",
        topic="orders",
        partition=0,
        offset=10**9,
        record_id=str(uuid.uuid4()),
        key=f"metrics-{uuid.uuid4()}",  # no real order's key: nothing is parked behind it
        reason=DeadLetterReason.HANDLER_FAILED,
        error="RuntimeError: a handler failed (test)",
    )
    try:
        web = scrape(endpoint(live_shop, "web"))
        consumer = scrape(endpoint(live_shop, "consume-payments"))
        # Labelled `group`, as the parked records and every consumer metric are.
        assert total(web, "backbone_dead_letters_pending", group=group) == 1
        assert total(consumer, "backbone_dead_letters_pending", group=group) == 1
        assert total(consumer, "backbone_dead_letters_pending") == 1  # its own group only
        assert not any("context" in dict(labels) for name, labels in web if name.startswith("backbone_"))
    finally:
        dead_letter.delete()
    assert total(scrape(endpoint(live_shop, "web")), "backbone_dead_letters_pending", group=group) == 0


ENDPOINTS = ["web", "relay", "consume-orders", "consume-stock", "consume-stock-2", "consume-payments"]


def test_every_endpoint_passes_promtool_check_metrics(live_shop: Shop) -> None:
    """What Prometheus' own linter says of each endpoint's exposition, after orders flowed (so
    the labelled series exist): nothing. scripts/services.sh tools installs promtool."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: scripts/services.sh tools installs it"
    alice = Customer(live_shop, f"metrics-{uuid.uuid4().hex[:6]}")
    assert alice.final(alice.place_ok((new_product(alice, on_hand=10), 1)))["state"] == "CONFIRMED"
    for name in ENDPOINTS:
        text = httpx.get(endpoint(live_shop, name), timeout=10).text
        done = subprocess.run(
            [promtool, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout + done.stderr) == (0, ""), name


def test_what_an_operator_looks_for_first(live_shop: Shop) -> None:
    """Request durations by URL pattern and status, who leads the relay, which build runs."""
    alice = Customer(live_shop, f"metrics-{uuid.uuid4().hex[:6]}")
    order_id = alice.place_ok((new_product(alice, on_hand=10), 1))
    assert alice.final(order_id)["state"] == "CONFIRMED"
    missing = f"/api/orders/{uuid.uuid4()}/"
    assert alice.http.get(missing).status_code == 404

    web = scrape(endpoint(live_shop, "web"))
    duration = "http_server_request_duration_seconds_count"
    order_route = "/api/orders/<uuid:order_id>/"
    assert total(web, duration, method="GET", route=order_route, status="200") >= 1
    assert total(web, duration, method="GET", route=order_route, status="404") >= 1
    assert total(web, duration, method="POST", route="/api/orders/", status="202") >= 1
    routes = {dict(labels)["route"] for name, labels in web if name == duration}
    assert not any(str(order_id) in route or missing in route for route in routes)  # patterns only

    # The one relay leads the one shard.
    relay = scrape(endpoint(live_shop, "relay"))
    assert total(relay, "outbox_relay_leader", shard="0") == 1

    for name in ENDPOINTS:
        build = {
            dict(labels)["version"]: value
            for (sample, labels), value in scrape(endpoint(live_shop, name)).items()
            if sample == "shop_build_info" and dict(labels)["python_version"] == platform.python_version()
        }
        assert build == {"0.1.0": 1.0}, name
