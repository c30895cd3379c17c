"""`manage.py demo` (`make demo`): the order flow, told through the HTTP API of a running shop.

Places orders as the seeded customers - one confirmed, one declined by the payment gateway,
and two customers racing for the last unit of a scarce product - waits for each outcome with
a long-poll, and prints the story of events behind it; then audits those stories
(`manage.py audit`: on Kafka where recorded, handled exactly once by every subscribed group).
Run `make run` first.
"""

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from .seed_demo import CUSTOMER, OTHER_CUSTOMER, PRODUCTS, SCARCE_SKU, STAFF, DemoUser

Json = dict[str, Any]
WAIT_SECONDS = 30


class ShopClient:
    """The shop's public API, as a customer (or staff) sees it."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=WAIT_SECONDS + 10)

    @classmethod
    def login(cls, base_url: str, user: DemoUser) -> "ShopClient":
        response = httpx.post(
            f"{base_url}/api/auth/token/", json={"username": user.username, "password": user.password}
        )
        if response.status_code != 200:
            raise CommandError(
                f"cannot log in as {user.username} ({response.status_code}): run `make run` first"
            )
        return cls(base_url, response.json()["token"])

    def products(self) -> dict[str, Json]:
        products: dict[str, Json] = {}
        url: str | None = "/api/products/"
        while url:
            page = self.http.get(url).raise_for_status().json()
            products.update((product["sku"], product) for product in page["results"])
            url = page["next"]
        return products

    def place(self, lines: list[tuple[str, int]], payment_token: str) -> httpx.Response:
        body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines], "payment_token": payment_token}
        # A real client keeps the key with its retries: a lost answer never places a second order.
        return self.http.post("/api/orders/", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def order(self, order_id: str, *, wait: float = 0) -> httpx.Response:
        return self.http.get(f"/api/orders/{order_id}/", params={"wait": wait} if wait else None)

    def story(self, order_id: str) -> Json:
        story: Json = self.http.get(f"/api/orders/{order_id}/events/").raise_for_status().json()
        return story

    def receive(self, sku: str, quantity: int) -> httpx.Response:
        return self.http.post(f"/api/stock/{sku}/receipts/", json={"quantity": quantity})


class Command(BaseCommand):
    help = "Place demo orders through the HTTP API of a running shop (`make run`) and print their stories."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the shop answers")

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = options["url"].rstrip("/")
        self.correlation_ids: list[str] = []  # of the stories told, for the audit at the end
        logging.getLogger("httpx").setLevel(logging.WARNING)  # the stories are the output, not each request
        try:
            httpx.get(f"{base_url}/health/", timeout=5).raise_for_status()
        except httpx.HTTPError as error:
            raise CommandError(
                f"the shop does not answer at {base_url} ({error}): start it with `make run`"
            ) from None
        alice = ShopClient.login(base_url, CUSTOMER)
        bob = ShopClient.login(base_url, OTHER_CUSTOMER)
        staff = ShopClient.login(base_url, STAFF)
        catalog = self.wait_for_catalog(alice)

        self.heading("1. alice buys a keyboard and two mice")
        confirmed = self.place_and_follow(alice, [("KB-101", 1), ("MS-202", 2)], "tok_visa")

        self.heading("2. alice pays for a monitor with a card the gateway declines (tok_declined)")
        self.place_and_follow(alice, [("MN-303", 1)], "tok_declined")

        self.heading(f"3. alice and bob race for the last {catalog[SCARCE_SKU]['name']} ({SCARCE_SKU})")
        self.race_for_the_last_units(alice, bob, staff)

        if confirmed:
            self.heading("4. bob looks at alice's order")
            status = bob.order(confirmed).status_code
            self.stdout.write(
                f"   GET /api/orders/{confirmed}/ as bob -> {status} (customers see only their own)"
            )

        self.heading("5. the audit of these stories: on Kafka where recorded, handled exactly once")
        self.audit_stories()

    # --- the scenes ---------------------------------------------------------------------------------

    def place_and_follow(
        self, client: ShopClient, lines: list[tuple[str, int]], payment_token: str
    ) -> str | None:
        return self.report(client, place_and_wait(client, lines, payment_token))

    def race_for_the_last_units(self, alice: ShopClient, bob: ShopClient, staff: ShopClient) -> None:
        available = alice.products()[SCARCE_SKU]["available"]
        if available <= 0:
            # An earlier demo sold it out: staff receive one more, and the view follows Stock's event.
            staff.receive(SCARCE_SKU, 1).raise_for_status()
            self.stdout.write(f"   (staff received 1 x {SCARCE_SKU}: the last demo sold it out)")
            available = self.wait_for_available(alice, SCARCE_SKU)
        self.stdout.write(
            f"   Orders' view shows {available} available; both order {available} at the same moment. "
            "Both pass the view's pre-check, Stock reserves atomically: one of them gets it."
        )
        racers = {"alice": alice, "bob": bob}
        start = threading.Barrier(len(racers))

        def race(client: ShopClient) -> Attempt:
            start.wait()
            return place_and_wait(client, [(SCARCE_SKU, available)], "tok_visa")

        with ThreadPoolExecutor(max_workers=len(racers)) as pool:
            attempts = dict(zip(racers, pool.map(race, racers.values()), strict=True))
        for name, client in racers.items():
            self.stdout.write(f"\n   {name}:")
            self.report(client, attempts[name])

    def report(self, client: ShopClient, attempt: "Attempt") -> str | None:
        if attempt.order is None:
            detail = attempt.response.json()["detail"]
            self.stdout.write(f"   {attempt.response.status_code} at the door, nothing placed: {detail}")
            return None
        order = attempt.order
        outcome = order["state"] + (f" ({order['reason']})" if order["reason"] else "")
        self.stdout.write(
            f"   order {order['id']}: {outcome}, total {order['total']}, decided in {attempt.seconds:.2f} s"
        )
        order_id: str = order["id"]
        self.print_story(client, order_id)
        return order_id

    def audit_stories(self) -> None:
        # Consumers may still be handling the last events of a story: the audit waits for them.
        for correlation_id in self.correlation_ids:
            try:
                call_command("audit", "--correlation-id", correlation_id, "--wait", "30", stdout=self.stdout)
            except CommandError as error:
                raise CommandError(f"the audit of story {correlation_id} failed: {error}") from None

    # --- output ------------------------------------------------------------------------------------

    def print_story(self, client: ShopClient, order_id: str) -> None:
        story = self.settled_story(client, order_id)
        self.stdout.write(f"   story {story['correlation_id']}:")
        self.correlation_ids.append(story["correlation_id"])
        numbers = {event["id"]: index for index, event in enumerate(story["events"], start=1)}
        for index, event in enumerate(story["events"], start=1):
            where = (
                f"{event['topic']}/{event['partition']}@{event['offset']}"
                if event["offset"] is not None
                else event["topic"]
            )
            cause = f"<- #{numbers[event['causation_id']]}" if event["causation_id"] in numbers else ""
            handled = ", ".join(handling["context"] for handling in event["handled_by"])
            self.stdout.write(
                f"   {index:>3}. {event['type']:<30} {where:<24} {cause:<6} {summary(event['data'])}"
                + (f"  [handled by {handled}]" if handled else "")
            )

    def settled_story(self, client: ShopClient, order_id: str, timeout: float = 10.0) -> Json:
        """Events keep coming after the outcome (Stock settles, Shipments prepares): wait for a lull."""
        deadline = time.monotonic() + timeout
        story, quiet_since = client.story(order_id), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            latest = client.story(order_id)
            if latest != story:
                story, quiet_since = latest, time.monotonic()
            elif time.monotonic() - quiet_since > 1.0 and all(
                e["offset"] is not None for e in story["events"]
            ):
                break
        return story

    def wait_for_catalog(self, client: ShopClient, timeout: float = 60.0) -> dict[str, Json]:
        """The catalog is Orders' view, fed by Stock's events: right after seeding it may lag."""
        deadline = time.monotonic() + timeout
        while True:
            catalog = client.products()
            if all(product.sku in catalog for product in PRODUCTS):
                return catalog
            if time.monotonic() > deadline:
                raise CommandError("the catalog is still empty: are the relay and `consume orders` running?")
            time.sleep(0.5)

    def wait_for_available(self, client: ShopClient, sku: str, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while (available := client.products()[sku]["available"]) <= 0:
            if time.monotonic() > deadline:
                raise CommandError(f"{sku} still shows no stock: are the relay and consumers running?")
            time.sleep(0.3)
        return int(available)

    def heading(self, text: str) -> None:
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING(text))


@dataclass(frozen=True)
class Attempt:
    response: httpx.Response  # the answer to the POST
    order: Json | None  # the order once decided (or when the wait ran out); None when not placed
    seconds: float  # from the POST to the answer of the long-poll


def place_and_wait(client: ShopClient, lines: list[tuple[str, int]], payment_token: str) -> Attempt:
    """POST the order, then long-poll until it is decided."""
    started = time.monotonic()
    response = client.place(lines, payment_token)
    if response.status_code == 409:
        return Attempt(response, None, time.monotonic() - started)
    if response.status_code != 202:
        raise CommandError(f"unexpected answer {response.status_code}: {response.text}")
    order = client.order(response.json()["id"], wait=WAIT_SECONDS).raise_for_status().json()
    return Attempt(response, order, time.monotonic() - started)


def summary(data: Json) -> str:
    """The few fields of an event's data worth a glance."""
    if "available" in data and "sku" in data:
        return f"{data['sku']}: available {data['available']}" + (
            f", on hand {data['on_hand']}, reserved {data['reserved']}" if "on_hand" in data else ""
        )
    for field in ("reason", "tracking_number"):
        if field in data:
            return f"{field}={data[field]}"
    if "total" in data:
        return f"total {data['total']}"
    if "amount" in data:
        return f"amount {data['amount']}"
    return ""
