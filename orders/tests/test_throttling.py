"""Rate limits against the real Redis: logins (API token and admin) and order placement answer
429 with Retry-After past their rate, and a Redis outage lets requests through instead of 500s."""

import logging
import uuid

import pytest
import redis
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from backbone.testing import free_port
from orders.tests.factories import PASSWORD, make_user, stock_level

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"
ORDERS = "/api/orders/"


@pytest.fixture(autouse=True)
def low_rates(settings) -> None:
    settings.THROTTLE_RATES = {"login": "5/minute", "orders": "3/minute"}


def unique_address() -> str:
    """Each test counts from its own address: counters outlive a test in Redis."""
    return "10." + ".".join(str(b) for b in uuid.uuid4().bytes[:3])


def unique_user(**kwargs):
    return make_user(f"user-{uuid.uuid4().hex[:8]}", **kwargs)


def login(username: str, password: str, address: str):
    return APIClient(REMOTE_ADDR=address).post(
        TOKEN, {"username": username, "password": password}, format="json"
    )


def test_wrong_passwords_past_the_rate_get_429_with_retry_after() -> None:
    user, address = unique_user(), unique_address()

    answers = [login(user.username, "wrong", address).status_code for _ in range(5)]
    throttled = login(user.username, PASSWORD, address)  # even the right password must wait now

    assert answers == [400] * 5
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert "throttled" in throttled.json()["detail"]
    # The counters are in the real Redis, under this session's prefix.
    keys = redis.Redis.from_url(settings.REDIS_URL).keys(
        f"{settings.CACHES['default']['KEY_PREFIX']}:*throttle_login*"
    )
    assert keys


def test_one_username_is_throttled_across_addresses() -> None:
    user = unique_user()
    answers = [login(user.username, "wrong", unique_address()).status_code for _ in range(6)]
    assert answers == [400] * 5 + [429]


@pytest.mark.parametrize("body", [[None, None], "alice", 7])
def test_a_login_body_that_is_no_json_object_is_a_400_and_still_counted(body) -> None:
    address = unique_address()
    client = APIClient(REMOTE_ADDR=address)

    answers = [client.post(TOKEN, body, format="json").status_code for _ in range(6)]

    assert answers == [400] * 5 + [429]


def test_the_admin_login_is_throttled_too() -> None:
    staff, address = unique_user(staff=True), unique_address()
    browser = Client(REMOTE_ADDR=address)
    form = {"username": staff.username, "password": "wrong", "next": "/admin/"}

    answers = [browser.post("/admin/login/", form).status_code for _ in range(5)]
    throttled = browser.post("/admin/login/", {**form, "password": PASSWORD})

    assert answers == [200] * 5  # the form again, with its error
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert "Too many login attempts" in throttled.content.decode()


def test_placing_orders_is_limited_per_customer() -> None:
    stock_level("KB-1", available=100)
    body = {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_visa"}
    busy, other = APIClient(), APIClient()
    busy.force_authenticate(unique_user())
    other.force_authenticate(unique_user())

    answers = [busy.post(ORDERS, body, format="json").status_code for _ in range(4)]

    assert answers == [202, 202, 202, 429]
    assert int(busy.post(ORDERS, body, format="json")["Retry-After"]) > 0
    assert busy.get(ORDERS).status_code == 200  # reading is not limited
    assert other.post(ORDERS, body, format="json").status_code == 202


def test_with_redis_down_logins_and_orders_go_through_and_say_so(settings, caplog) -> None:
    # A free port: nothing listens there, so connecting is refused, as by a Redis that is down.
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    user, address = unique_user(), unique_address()
    stock_level("KB-1", available=100)
    customer = APIClient()
    customer.force_authenticate(user)
    body = {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_visa"}

    with caplog.at_level(logging.WARNING, logger="backbone.throttling"):
        wrong = [login(user.username, "wrong", address).status_code for _ in range(6)]
        right = login(user.username, PASSWORD, address)
        admin = Client(REMOTE_ADDR=address).post(
            "/admin/login/", {"username": user.username, "password": "x"}
        )
        placed = [customer.post(ORDERS, body, format="json").status_code for _ in range(4)]

    assert wrong == [400] * 6
    assert right.status_code == 200
    assert admin.status_code == 200
    assert placed == [202] * 4
    assert "not enforced: the cache (Redis) is unavailable" in caplog.text
