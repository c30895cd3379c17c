"""End to end: the real relay, consumers, Celery worker and gunicorn, driven only through HTTP,
with every claim checked against what reached Kafka.

Users and the catalog are set up the way `seed_demo` does it (users in the database, products
through Stock's service, whose events feed Orders' view); everything after that goes through
the public API.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from rest_framework.authtoken.models import Token
from selenium.webdriver.common.by import By

from backbone import tracing
from backbone.contracts import registry
from backbone.testing import KafkaRecord, wait_for
from backbone.testing.browser import chromium, log_in, screenshot
from orders.models import Notification
from orders.tasks import send_notification_email
from orders.tests.conftest import Shop
from orders.tests.factories import PASSWORD, make_user
from stock.services import register_product

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]

ORDER_KEYED_TOPICS = {"orders", "stock.reservations", "payments", "shipments"}
STOCK_CONSUMERS = ("consume-stock", "consume-stock-2")  # see the shop fixture


class Customer:
    """A client of the shop's HTTP API with one user's token."""

    def __init__(self, shop: Shop, username: str, *, staff: bool = False) -> None:
        self.user = make_user(username, staff=staff)
        token = Token.objects.create(user=self.user).key
        self.http = httpx.Client(
            base_url=shop.base_url, headers={"Authorization": f"Token {token}"}, timeout=60
        )

    def place(
        self, *lines: tuple[str, int], token: str = "tok_visa", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines], "payment_token": token}
        return self.http.post("/api/orders/", json=body, headers=headers)

    def place_ok(self, *lines: tuple[str, int], token: str = "tok_visa") -> str:
        response = self.place(*lines, token=token)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def outcome(self, order_id: str, wait: float = 30) -> dict:
        response = self.http.get(f"/api/orders/{order_id}/", params={"wait": wait})
        assert response.status_code == 200, response.text
        return response.json()

    def final(self, order_id: str) -> dict:
        return wait_for(lambda: _final_or_none(self.outcome(order_id)), timeout=90, what=f"order {order_id}")

    def available(self, sku: str) -> int | None:
        products = self.http.get("/api/products/", params={"page_size": 500}).json()["results"]
        return next((product["available"] for product in products if product["sku"] == sku), None)


def _final_or_none(order: dict) -> dict | None:
    return order if order["state"] in {"CONFIRMED", "REJECTED"} else None


def new_product(customer: Customer, *, on_hand: int, reorder_point: int = 0, price: str = "10.00") -> str:
    """Register a product with Stock and wait until Orders' view (the catalog) shows it."""
    sku = f"E2E-{uuid.uuid4().hex[:8]}"
    register_product(
        sku=sku,
        name=f"Test product {sku}",
        price=Decimal(price),
        on_hand=on_hand,
        reorder_point=reorder_point,
        reorder_quantity=10,
    )
    wait_for(lambda: customer.available(sku) == on_hand, what=f"{sku} in the catalog")
    return sku


def story(shop: Shop, order_id: str) -> list[KafkaRecord]:
    """The order's events as Kafka holds them: the records sharing its OrderRequested's correlation id."""
    [requested] = [
        r for r in shop.kafka.catch_up() if r.key == order_id and r.type == "orders.OrderRequested"
    ]
    return shop.kafka.story(requested.envelope.correlation_id)


def chain(shop: Shop, order_id: str, expected: Counter[str]) -> list[KafkaRecord]:
    """Wait until the order's story holds the expected events, and check the envelope of each."""
    records = wait_for(
        lambda: (found := story(shop, order_id)) and Counter(r.type for r in found) == expected and found,
        timeout=60,
        what=f"the event chain of order {order_id}: {dict(expected)}",
    )
    for record in records:
        context = record.type.split(".")[0]
        assert record.headers["ce_specversion"] == "1.0"
        assert record.headers["content-type"] == "application/json"
        assert record.headers["ce_source"] == f"/{context}"
        assert record.headers["ce_dataversion"] == str(registry.get(record.type).contract_version)
        assert record.headers["ce_time"]
        data = json.loads(record.value)
        if record.topic in ORDER_KEYED_TOPICS:
            assert record.key == order_id == data["order_id"]
        else:
            assert record.topic == "stock.levels"
            assert record.key == data["sku"]
    assert len({record.envelope.id for record in records}) == len(records)
    # One correlation id per order: every record about this order on its topics carries it.
    about_order = [r for r in shop.kafka.catch_up() if r.key == order_id]
    assert {r.envelope.correlation_id for r in about_order} == {records[0].envelope.correlation_id}
    # One trace per order (ce_traceparent), across gunicorn and every consumer, tracing off.
    assert all(r.envelope.traceparent for r in records)
    assert len({tracing.trace_id_of(r.envelope.traceparent or "") for r in records}) == 1
    return records


def only(records: list[KafkaRecord], event_type: str) -> KafkaRecord:
    [record] = [r for r in records if r.type == event_type]
    return record


def caused(records: list[KafkaRecord], effect: str, cause: str) -> None:
    """Each `effect` names the `cause` event as its causation id."""
    cause_id = only(records, cause).envelope.id
    effects = [r for r in records if r.type == effect]
    assert effects, effect
    assert all(r.envelope.causation_id == cause_id for r in effects), f"{effect} not caused by {cause}"


def deliver_notifications_again(order_ids: list[str]) -> None:
    """Hand each notification task of these orders to the worker once more, as a broker that
    redelivers a task whose worker died after sending (or a sweep racing a slow worker) does,
    and wait until the worker has run them all."""
    ids = list(Notification.objects.filter(order_id__in=order_ids).values_list("id", flat=True))
    assert ids
    again = [send_notification_email.apply_async((i,), ignore_result=False) for i in ids]
    assert [result.get(timeout=60) for result in again] == ["sent"] * len(ids)


def levels(records: list[KafkaRecord], sku: str) -> list[dict]:
    changes = [json.loads(r.value) for r in records if r.type == "stock.StockLevelChanged"]
    return sorted(
        (change for change in changes if change["sku"] == sku), key=lambda change: change["version"]
    )


# --- The three outcomes ------------------------------------------------------------------------------


def test_an_order_is_confirmed_with_its_whole_event_chain(live_shop: Shop) -> None:
    alice = Customer(live_shop, "alice")
    sku = new_product(alice, on_hand=10)

    order_id = alice.place_ok((sku, 2))
    order = alice.final(order_id)

    assert (order["state"], order["reason"], order["total"]) == ("CONFIRMED", None, "20.00")
    records = chain(
        live_shop,
        order_id,
        Counter(
            {
                "orders.OrderRequested": 1,
                "stock.StockReserved": 1,
                "stock.StockLevelChanged": 2,  # reserved, then committed
                "orders.OrderValidated": 1,
                "payments.PaymentProcessed": 1,
                "orders.OrderConfirmed": 1,
                "shipments.ShipmentPrepared": 1,
            }
        ),
    )
    assert only(records, "orders.OrderRequested").envelope.causation_id is None
    caused(records, "stock.StockReserved", "orders.OrderRequested")
    caused(records, "orders.OrderValidated", "stock.StockReserved")
    caused(records, "payments.PaymentProcessed", "orders.OrderValidated")
    caused(records, "orders.OrderConfirmed", "payments.PaymentProcessed")
    caused(records, "shipments.ShipmentPrepared", "orders.OrderConfirmed")
    reserved, committed = levels(records, sku)
    assert (reserved["on_hand"], reserved["reserved"], reserved["available"]) == (10, 2, 8)
    assert (committed["on_hand"], committed["reserved"], committed["available"]) == (8, 0, 8)
    # The API's story is the same chain.
    api_story = alice.http.get(f"/api/orders/{order_id}/events/").json()
    assert {event["id"] for event in api_story["events"]} >= {r.envelope.id for r in records}


def test_a_declined_payment_rejects_the_order_and_releases_its_reservation(live_shop: Shop) -> None:
    alice = Customer(live_shop, "alice")
    sku = new_product(alice, on_hand=10)

    order_id = alice.place_ok((sku, 3), token="tok_declined")
    order = alice.final(order_id)

    assert (order["state"], order["reason"]) == ("REJECTED", "payment_declined")
    records = chain(
        live_shop,
        order_id,
        Counter(
            {
                "orders.OrderRequested": 1,
                "stock.StockReserved": 1,
                "stock.StockLevelChanged": 2,  # reserved, then released
                "orders.OrderValidated": 1,
                "payments.PaymentFailed": 1,
                "orders.OrderRejected": 1,
            }
        ),
    )
    caused(records, "payments.PaymentFailed", "orders.OrderValidated")
    caused(records, "orders.OrderRejected", "payments.PaymentFailed")
    assert json.loads(only(records, "orders.OrderRejected").value)["reason"] == "payment_declined"
    reserved, released = levels(records, sku)
    assert (reserved["reserved"], reserved["available"]) == (3, 7)
    assert (released["on_hand"], released["reserved"], released["available"]) == (10, 0, 10)
    wait_for(lambda: alice.available(sku) == 10, what="Orders' view to show the released stock")


def test_an_order_stock_cannot_cover_is_rejected_for_stock(live_shop: Shop) -> None:
    alice, bob = Customer(live_shop, "alice"), Customer(live_shop, "bob")
    sku = new_product(alice, on_hand=1)
    # With Orders' consumer stopped its view keeps showing the last unit, so both orders pass
    # the pre-check and Stock, the authority, has to turn one of them down.
    live_shop.processes.stop("consume-orders")
    orders = {alice.place_ok((sku, 1)): alice, bob.place_ok((sku, 1)): bob}
    live_shop.processes.start("consume-orders")

    outcomes = {order_id: customer.final(order_id) for order_id, customer in orders.items()}

    assert sorted((o["state"], o["reason"]) for o in outcomes.values()) == [
        ("CONFIRMED", None),
        ("REJECTED", "out_of_stock"),
    ]
    [rejected_id] = [order_id for order_id, o in outcomes.items() if o["state"] == "REJECTED"]
    records = chain(
        live_shop,
        rejected_id,
        Counter({"orders.OrderRequested": 1, "stock.StockReservationFailed": 1, "orders.OrderRejected": 1}),
    )
    caused(records, "stock.StockReservationFailed", "orders.OrderRequested")
    caused(records, "orders.OrderRejected", "stock.StockReservationFailed")
    assert json.loads(only(records, "orders.OrderRejected").value)["reason"] == "out_of_stock"
    # And now the view knows: the next order is turned away at the door, emitting nothing.
    wait_for(lambda: alice.available(sku) == 0, what="Orders' view to show the sku sold out")
    refused = alice.place((sku, 1))
    assert refused.status_code == 409
    assert refused.json()["shortages"] == [{"sku": sku, "requested": 1, "available": 0}]


# --- No overselling ----------------------------------------------------------------------------------


def test_200_concurrent_orders_for_50_units_confirm_exactly_50(live_shop: Shop) -> None:
    customers = [Customer(live_shop, f"customer-{n}") for n in range(10)]
    sku = new_product(customers[0], on_hand=50, reorder_point=5)
    start = threading.Barrier(40)

    def order(number: int) -> dict:
        customer = customers[number % len(customers)]
        if number < 40:
            start.wait(timeout=60)  # the first wave leaves together
        response = customer.place((sku, 1))
        if response.status_code == 409:
            return {"state": "409"}
        assert response.status_code == 202, response.text
        return customer.final(response.json()["id"])

    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(order, range(200)))

    counted = Counter((o["state"], o.get("reason")) for o in outcomes)
    # Both Stock consumers reserved this sku: the reservations raced across processes.
    assert all(
        f"reserved {{'{sku}': 1}}" in live_shop.processes.processes[name].log_path.read_text(errors="replace")
        for name in STOCK_CONSUMERS
    ), live_shop.processes.logs(*STOCK_CONSUMERS)
    assert counted[("CONFIRMED", None)] == 50, counted
    assert counted[("REJECTED", "out_of_stock")] + counted[("409", None)] == 150, counted
    print(f"200 orders for 50 units: {dict(counted)}")

    live_shop.wait_until_quiet()
    records = live_shop.kafka.catch_up()
    changes = levels(records, sku)
    assert all(c["available"] >= 0 and c["on_hand"] >= 0 and c["reserved"] >= 0 for c in changes)
    assert [c["version"] for c in changes] == list(range(changes[0]["version"], changes[-1]["version"] + 1))
    final = changes[-1]
    assert (final["on_hand"], final["reserved"], final["available"]) == (0, 0, 0)
    # After quiescence Orders' view equals Stock's level.
    assert customers[0].available(sku) == final["available"]
    from orders.models import StockLevelView

    assert StockLevelView.objects.get(sku=sku).version == final["version"]
    # Crossing the reorder point (5) asked for more stock once.
    reorders = [r for r in records if r.type == "stock.StockReorderRequested" and r.key == sku]
    assert len(reorders) == 1
    # The last line of defence is in the database the processes write to: were a reservation
    # ever to get past the row locks, PostgreSQL would refuse to store reserved > on_hand.
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE stock_stocklevel SET reserved = on_hand + 1 WHERE product_id = %s", [sku])


def test_crossing_the_reorder_point_requests_stock_once(live_shop: Shop) -> None:
    alice = Customer(live_shop, "alice")
    sku = new_product(alice, on_hand=10, reorder_point=5)

    for quantity in (4, 2, 1):  # available 6 (above), 4 (crossed), 3 (still below)
        assert alice.final(alice.place_ok((sku, quantity)))["state"] == "CONFIRMED"
    live_shop.wait_until_quiet()

    reorders = [
        r for r in live_shop.kafka.catch_up() if r.type == "stock.StockReorderRequested" and r.key == sku
    ]
    assert len(reorders) == 1
    assert json.loads(reorders[0].value)["reorder_point"] == 5


# --- Shipping, emails, failures ----------------------------------------------------------------------


def test_a_confirmed_order_is_shipped_dispatched_and_mailed_once(live_shop: Shop) -> None:
    alice, staff = Customer(live_shop, "alice"), Customer(live_shop, "staff", staff=True)
    sku = new_product(alice, on_hand=5)
    order_id = alice.place_ok((sku, 1))
    assert alice.final(order_id)["state"] == "CONFIRMED"

    shipment = wait_for(
        lambda: alice.outcome(order_id, wait=0)["shipment"], what="the shipment to be prepared"
    )
    assert shipment["status"] == "prepared"
    assert alice.http.post(f"/api/shipments/{shipment['id']}/dispatch/").status_code == 403
    response = staff.http.post(f"/api/shipments/{shipment['id']}/dispatch/")
    assert response.status_code in {200, 202}, response.text

    dispatched = wait_for(
        lambda: (s := alice.outcome(order_id, wait=0)["shipment"]) and s["status"] == "dispatched" and s,
        what="Orders to record the dispatch",
    )
    assert dispatched["tracking_number"]
    wait_for(lambda: live_shop.emails_about(order_id, "dispatch") == 1, what="the dispatch email")
    live_shop.wait_until_quiet()
    deliver_notifications_again([order_id])  # both tasks a second time
    assert live_shop.emails_about(order_id, "confirmation") == 1
    assert live_shop.emails_about(order_id, "dispatch") == 1
    dispatch_record = wait_for(
        lambda: [
            r
            for r in live_shop.kafka.catch_up()
            if r.key == order_id and r.type == "shipments.ShipmentDispatched"
        ],
        what="ShipmentDispatched on Kafka",
    )
    assert json.loads(dispatch_record[0].value)["tracking_number"] == dispatched["tracking_number"]
    # The staff request triggered it, but the dispatch continues the order's story.
    [requested] = [
        r for r in live_shop.kafka.catch_up() if r.key == order_id and r.type == "orders.OrderRequested"
    ]
    assert dispatch_record[0].envelope.correlation_id == requested.envelope.correlation_id
    story = alice.http.get(f"/api/orders/{order_id}/events/").json()
    assert "shipments.ShipmentDispatched" in json.dumps(story)


def test_each_email_is_sent_once_when_a_consumer_is_killed_midway(live_shop: Shop) -> None:
    customers = [Customer(live_shop, f"buyer-{n}") for n in range(5)]
    sku = new_product(customers[0], on_hand=100)

    with ThreadPoolExecutor(max_workers=10) as pool:
        order_ids = list(pool.map(lambda n: customers[n % 5].place_ok((sku, 1)), range(30)))
        # Kill Orders' consumer while the orders are on their way, then bring it back.
        wait_for(lambda: len(live_shop.emails()) >= 3, timeout=60, what="the first confirmations")
        live_shop.processes.kill("consume-orders")
        live_shop.processes.start("consume-orders")
        outcomes = list(pool.map(lambda n: customers[n % 5].final(order_ids[n]), range(30)))

    assert all(outcome["state"] == "CONFIRMED" for outcome in outcomes)
    assert live_shop.processes.processes["consume-orders"].starts >= 2
    wait_for(
        lambda: all(live_shop.emails_about(order_id, "confirmation") >= 1 for order_id in order_ids),
        timeout=60,
        what="a confirmation email for every order",
    )
    live_shop.wait_until_quiet()
    deliver_notifications_again(order_ids)
    assert [live_shop.emails_about(order_id, "confirmation") for order_id in order_ids] == [1] * 30


def test_customers_see_only_their_own_orders_and_no_staff_endpoints(live_shop: Shop) -> None:
    alice, bob = Customer(live_shop, "alice"), Customer(live_shop, "bob")
    sku = new_product(alice, on_hand=5)
    order_id = alice.place_ok((sku, 1))

    assert bob.http.get(f"/api/orders/{order_id}/").status_code == 404
    assert bob.http.get(f"/api/orders/{order_id}/events/").status_code == 404
    assert bob.http.get("/api/orders/").json()["count"] == 0
    assert alice.http.get(f"/api/orders/{order_id}/").status_code == 200
    assert bob.http.post(f"/api/stock/{sku}/receipts/", json={"quantity": 5}).status_code == 403
    assert bob.http.post(f"/api/shipments/{uuid.uuid4()}/dispatch/").status_code == 403
    alice.final(order_id)


def test_a_shared_correlation_id_shows_no_customer_another_ones_events(live_shop: Shop) -> None:
    alice, mallory = Customer(live_shop, "alice"), Customer(live_shop, "mallory")
    sku = new_product(alice, on_hand=10)
    shared = {"X-Correlation-ID": "a-trace-id-mallory-copied"}
    placed = {customer: customer.place((sku, 1), headers=shared) for customer in (alice, mallory)}
    assert all(response.status_code == 202 for response in placed.values())
    assert all(
        response.headers["X-Correlation-ID"] != shared["X-Correlation-ID"] for response in placed.values()
    )
    order_ids = {customer: response.json()["id"] for customer, response in placed.items()}
    for customer, order_id in order_ids.items():
        assert customer.final(order_id)["state"] == "CONFIRMED"
    live_shop.wait_until_quiet()

    stories = {c: c.http.get(f"/api/orders/{order_ids[c]}/events/").json() for c in (alice, mallory)}

    for customer, other in ((alice, mallory), (mallory, alice)):
        events = stories[customer]["events"]
        assert Counter(event["type"] for event in events) == Counter(
            {
                "orders.OrderRequested": 1,
                "stock.StockReserved": 1,
                "stock.StockLevelChanged": 2,
                "orders.OrderValidated": 1,
                "payments.PaymentProcessed": 1,
                "orders.OrderConfirmed": 1,
                "shipments.ShipmentPrepared": 1,
            }
        )
        assert order_ids[other] not in json.dumps(events)
        assert "tok_visa" not in json.dumps(events)  # the payment token is no customer's to read
    assert stories[alice]["correlation_id"] != stories[mallory]["correlation_id"]
    assert not {e["id"] for e in stories[alice]["events"]} & {e["id"] for e in stories[mallory]["events"]}
    # On Kafka too, each order is a story of its own.
    requested = [
        r
        for r in live_shop.kafka.catch_up()
        if r.type == "orders.OrderRequested" and r.key in order_ids.values()
    ]
    assert len({r.envelope.correlation_id for r in requested}) == 2


def test_make_demo_tells_the_three_outcomes(live_shop: Shop) -> None:
    call_command("seed_demo", stdout=io.StringIO())
    demo = subprocess.run(
        [sys.executable, "manage.py", "demo", "--url", live_shop.base_url],
        cwd=settings.BASE_DIR,
        env=live_shop.processes.env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert demo.returncode == 0, demo.stdout + demo.stderr
    output = demo.stdout
    assert ": CONFIRMED, total 148.00" in output
    assert ": REJECTED (payment_declined), total 249.00" in output
    assert ": REJECTED (out_of_stock)" in output or "409 at the door" in output
    assert "orders.OrderRequested" in output
    assert "payments.PaymentFailed" in output
    assert "as bob -> 404" in output
    # It ends with an audit of every story it told, none with a discrepancy.
    stories = output.count("   story ")
    assert stories >= 3
    assert output.count("no discrepancy: every event is on Kafka and took effect exactly once") == stories


# --- The story picture, in a real browser -------------------------------------------------------------


def test_staff_see_an_order_story_as_a_picture_in_chromium(live_shop: Shop) -> None:
    alice = Customer(live_shop, "alice")
    sku = new_product(alice, on_hand=10)
    order_id = alice.place_ok((sku, 2))
    assert alice.final(order_id)["state"] == "CONFIRMED"
    live_shop.wait_until_quiet()  # every event handled by every group that subscribes to it
    staff = make_user("staffer", staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_order"))

    with chromium(width=1600, height=800) as browser:
        log_in(browser, live_shop.base_url, "staffer", PASSWORD, f"/admin/orders/order/{order_id}/change/")
        browser.find_element(By.LINK_TEXT, "its story as a picture").click()
        browser.find_element(By.CSS_SELECTOR, ".story svg")
        shot = screenshot(browser, "order-story.png")
        if os.environ.get("STORY_SCREENSHOT"):  # how docs/images/story.png is made
            shutil.copy(shot, os.environ["STORY_SCREENSHOT"])
        lanes = [lane.get_attribute("data-lane") for lane in browser.find_elements(By.CSS_SELECTOR, "g.lane")]
        boxes = browser.find_elements(By.CSS_SELECTOR, "g.event")
        types = [box.find_element(By.CSS_SELECTOR, ".type").text.split(". ", 1)[1] for box in boxes]
        arrows = browser.find_elements(By.CSS_SELECTOR, "path.arrow")
        warnings = browser.find_elements(By.CSS_SELECTOR, ".warning")
        first_marks = [mark.text for mark in boxes[0].find_elements(By.CSS_SELECTOR, ".mark")]

    assert lanes == ["orders", "stock", "payments", "shipments"]
    assert types[0] == "OrderRequested"
    assert Counter(types) == {
        "OrderRequested": 1,
        "StockReserved": 1,
        "StockLevelChanged": 2,
        "OrderValidated": 1,
        "PaymentProcessed": 1,
        "OrderConfirmed": 1,
        "ShipmentPrepared": 1,
    }
    assert len(arrows) == len(boxes) - 1  # every event but the request has its cause in the story
    assert first_marks == ["✓ stock"]
    assert warnings == []


def test_staff_see_every_process_of_the_shop_on_the_backbone_overview_in_chromium(live_shop: Shop) -> None:
    alice = Customer(live_shop, "alice")
    order_id = alice.place_ok((new_product(alice, on_hand=10), 1))
    assert alice.final(order_id)["state"] == "CONFIRMED"
    live_shop.wait_until_quiet()
    make_user("overseer", staff=True)

    with chromium(width=1400, height=1000) as browser:
        log_in(browser, live_shop.base_url, "overseer", PASSWORD, "/admin/backbone-overview/")
        browser.find_element(By.ID, "backbone-overview")  # logged in: the page is there

        def every_process_beat_since_the_order() -> bool:  # the relay's and every group's heartbeats
            browser.refresh()
            text = browser.find_element(By.ID, "backbone-overview").text
            return "last handled -" not in text and "none alive" not in text

        wait_for(
            every_process_beat_since_the_order, timeout=30, what="heartbeats of a leader and every group"
        )
        page = browser.find_element(By.ID, "backbone-overview")
        shot = screenshot(browser, "backbone-overview.png")
        if os.environ.get("OVERVIEW_SCREENSHOT"):  # how docs/images/overview.png is made
            shutil.copy(shot, os.environ["OVERVIEW_SCREENSHOT"])
        headings = [heading.text for heading in page.find_elements(By.TAG_NAME, "h2")]
        text = page.text

    for context in ("orders", "stock", "payments", "shipments"):
        assert any(heading.startswith(f"consumer {context}") for heading in headings), headings
    assert "none alive" not in text  # a relay leads
    assert "no live member" not in text  # every consumer has a live member
    assert "dead letters pending" in text
