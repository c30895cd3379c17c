"""The web part: its rows and targets, its registration, and the servers it measures, started as
the bench starts them (the Procfile's `web:` line, the bare WSGI floor) on the test database."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from backbone.conf import backbone_settings
from backbone.testing.processes import database_url
from bench import web_requests
from bench.environment import BASE_DIR, Processes, connect
from bench.harness import MODES, Result
from bench.run import BENCHMARKS, BenchContext, parse_args
from bench.web_load import Spent
from bench.web_rows import Floors, comparison_rows, floor_rows, request_rows


def spent(web_ms: float, postgres_ms: float = 0.0, requests: int = 1000, errors: int = 0) -> Spent:
    return Spent(
        requests=requests,
        seconds=2.0,
        web_cpu_seconds=web_ms * (requests - errors) / 1000,
        postgres_cpu_seconds=postgres_ms * (requests - errors) / 1000,
        latencies=[0.001] * requests,
        errors=["500: boom"] * errors,
    )


FLOORS = Floors(bare=spent(0.5), stack=spent(0.7))


def test_floor_rows_compare_the_stack_with_the_bare_wsgi_view():
    bare, stack = floor_rows(FLOORS)
    assert bare.value == pytest.approx(0.5)
    assert (stack.value, stack.baseline, stack.ratio) == pytest.approx((0.7, 0.5, 1.4))
    assert stack.target == "<= 1.5x bare"
    assert stack.met is True
    assert floor_rows(Floors(bare=spent(0.5), stack=spent(0.8)))[1].met is False


def test_request_rows_carry_the_issue_targets_and_a_failed_request_misses_them():
    rows = request_rows(
        {"GET /health/": spent(1.0), "GET /api/orders/{id}/": spent(1.5), "POST /api/orders/": spent(4.5)},
        FLOORS,
    )
    health, order, post = rows
    assert (health.target, health.met, health.ratio) == ("", None, pytest.approx(2.0))
    assert (order.target, order.met) == ("<= 2 ms", True)
    assert (post.target, post.met) == ("<= 4 ms", False)
    failing = request_rows({"GET /api/orders/{id}/": spent(1.5, errors=3)}, FLOORS)[0]
    assert failing.met is False
    assert "3 of 1000 failed" in failing.note


def test_the_shop_is_compared_with_the_plain_shop_when_e2e_ran_before():
    baseline = spent(6.0, postgres_ms=2.0)
    e2e_total = Result("end to end", "CPU ms per confirmed order @20/s: total", 24.0, "ms")
    assert comparison_rows([], 20, baseline) == []
    (row,) = comparison_rows([e2e_total], 20, baseline)
    assert (row.value, row.baseline, row.ratio) == pytest.approx((24.0, 8.0, 3.0))
    assert comparison_rows([e2e_total], 40, baseline) == []  # another rate: not comparable


def test_web_is_a_part_of_the_default_set_and_runs_after_e2e_whatever_the_order_given():
    assert "web" in BENCHMARKS
    assert "web" in parse_args([]).selected
    assert parse_args(["--only", "web,e2e"]).selected == ["e2e", "web"]


# --- The servers, for real --------------------------------------------------------------------


@pytest.fixture
def context(tmp_path: Path) -> Iterator[BenchContext]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
    }
    processes = Processes(env=environment, logs_dir=tmp_path)
    yield BenchContext(
        mode=MODES["quick"],
        database_url=environment["DATABASE_URL"],
        namespace=backbone_settings.KAFKA_NAMESPACE,
        processes=processes,
    )
    processes.stop_all()


def web_command() -> str:
    from bench.end_to_end import _procfile

    return _procfile(Path(BASE_DIR, "Procfile"))["web"]


async def statuses(context: BenchContext, command: str, **server: str) -> tuple[int, str, int]:
    """/bench/trivial/ (status and body) and /health/ from a server started as the web part
    starts it."""
    async with web_requests._server(context, "web-under-test", command, **server) as (client, _meter):
        trivial = await client.get(web_requests.TRIVIAL)
        health = await client.get("/health/")
        return trivial.status_code, trivial.text, health.status_code


@pytest.mark.django_db(transaction=True)
def test_the_floors_answer_the_trivial_view_and_the_shop_itself_has_no_such_route(context: BenchContext):
    ok = '{"status": "ok"}'
    stack = {"settings": web_requests.STACK_FLOOR_SETTINGS}
    assert asyncio.run(statuses(context, web_command(), **stack)) == (200, ok, 200)
    # The bare Django has no other route: /health/ is its 404.
    bare = {"settings": web_requests.BARE_SETTINGS, "ready": web_requests.TRIVIAL}
    assert asyncio.run(statuses(context, web_requests._bare_command(), **bare))[::2] == (200, 404)
    assert asyncio.run(statuses(context, web_command()))[::2] == (404, 200)


PLAIN = web_requests.PLAIN_SHOP_SETTINGS


@pytest.fixture
def plain_shop(context: BenchContext) -> Iterator[BenchContext]:
    """The plain shop's tables in the test database, dropped afterwards (Django's test flush
    knows nothing of them, and their foreign key to users would stop it)."""
    web_requests._create_plain_shop(context)
    yield context
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "plain_shop", "zero", "-v", "0", f"--settings={PLAIN}"],
        cwd=BASE_DIR,
        env=context.processes.env,
        check=True,
    )


@pytest.mark.django_db(transaction=True)
def test_the_plain_shop_places_an_order_in_one_transaction_or_nothing(plain_shop: BenchContext):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    with connect(plain_shop.database_url, autocommit=True) as db:
        db.execute("INSERT INTO plain_shop_product (sku, price, on_hand) VALUES ('KB-1', 10.00, 3)")
    token = Token.objects.create(user=get_user_model().objects.create_user("carol"))
    headers = {"Authorization": f"Token {token.key}"}
    answers = asyncio.run(_plain_orders(plain_shop, headers))
    assert [status for status, _ in answers] == [201, 409, 402]
    assert answers[0][1]["state"] == "CONFIRMED"
    with connect(plain_shop.database_url, autocommit=True) as db:
        on_hand = db.execute("SELECT on_hand FROM plain_shop_product").fetchone()
        counts = [
            db.execute(f"SELECT count(*) FROM plain_shop_{table}").fetchone()[0]
            for table in ("order", "orderline", "payment", "shipment", "outgoingemail")
        ]
    # Only the first order took stock and wrote its rows; the refused ones rolled back.
    assert on_hand == (1,)
    assert counts == [1, 1, 1, 1, 1]


async def _plain_orders(
    context: BenchContext, headers: dict[str, str]
) -> list[tuple[int, dict[str, object]]]:
    bodies = [
        {"lines": [{"sku": "KB-1", "quantity": 2}], "payment_token": "tok_bench"},
        {"lines": [{"sku": "KB-1", "quantity": 2}], "payment_token": "tok_bench"},  # 1 left: short
        {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_declined"},
    ]
    settings_module = web_requests.PLAIN_SHOP_SETTINGS
    async with web_requests._server(context, "web-plain", web_command(), settings=settings_module) as (
        client,
        _meter,
    ):
        answers = []
        for body in bodies:
            response = await client.post(web_requests.PLAIN_ORDERS, json=body, headers=headers)
            answers.append((response.status_code, response.json()))
        return answers
