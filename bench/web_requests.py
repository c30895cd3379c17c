"""Web: the web tier's server-side CPU per request, and the price of the architecture.

Each server is started alone (nothing else of the bench runs meanwhile) and gets N requests
(quick 1,500) from 4 concurrent clients after a warm-up; its CPU is that of its process group
(gunicorn's master and workers) from /proc, divided by the requests answered.

1. The shop: the Procfile's `web:` line as it stands, no relay or consumer (a POST writes the
   order and its outbox row, nothing more): GET /health/, GET /api/products/, GET an order
   with and without `?wait=0`, POST a valid order. The demo data of `manage.py seed_demo`,
   Orders' view of stock raised directly (no consumer runs to carry Stock's events there).
2. Two floors: (a) the stack floor, the same command and middleware answering a trivial JSON
   view (DJANGO_SETTINGS_MODULE=bench.web_floor.settings, which adds the route to the shop's);
   (b) the bare floor, the same view in a bare Django (bench/web_floor/bare_*.py) under
   `gunicorn --worker-class sync --workers 2`. Every row's baseline is (b).
3. A plain Django shop (bench/plain_shop/): an order's business steps in one synchronous view
   and one transaction, behind the same web command. Its CPU per request like the others, its
   web + PostgreSQL CPU per order at a fixed rate, and its orders/s with 16 clients back to
   back. When the e2e part ran in the same invocation, the shop's CPU per confirmed order at
   the same rate against the baseline's.
"""

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx

from bench.end_to_end import _free_port, _procfile, _seed
from bench.environment import BASE_DIR, connect
from bench.harness import Result, progress, skipped
from bench.run import BenchContext
from bench.web_load import Meter, Request, Spent, at_rate, back_to_back, cpu_per_request, order_lines
from bench.web_rows import NAME, Floors, baseline_rows, comparison_rows, floor_rows, request_rows

RESTOCK = 10_000_000
PAYMENT_TOKEN = "tok_bench"
STACK_FLOOR_SETTINGS = "bench.web_floor.settings"
PLAIN_SHOP_SETTINGS = "bench.plain_shop.settings"
BARE_SETTINGS = "bench.web_floor.bare_settings"
TRIVIAL = "/bench/trivial/"
PLAIN_ORDERS = "/bench/plain/orders/"
# Every order of a few customers: the shop's per-customer limits would stop them.
LIFTED_LIMITS = {
    "THROTTLE_ORDERS_RATE": "1000000/minute",
    "THROTTLE_LOGIN_RATE": "1000000/minute",
    "ORDER_WAITS_PER_CUSTOMER": "1000000",
}


def run(context: BenchContext) -> list[Result]:
    from django.conf import settings

    procfile = Path(settings.BASE_DIR, "Procfile")
    if not procfile.exists():
        return [skipped(NAME, "no Procfile yet (make run)")]
    web = _procfile(procfile)["web"]
    tokens = _seed()
    skus = _stock_orders_view()
    _create_plain_shop(context)
    return asyncio.run(_drive(context, web, [tokens["alice"], tokens["bob"]], skus))


async def _drive(context: BenchContext, web: str, tokens: list[str], skus: list[str]) -> list[Result]:
    bare = _bare_command()
    async with _server(context, "web-floor-bare", bare, settings=BARE_SETTINGS, ready=TRIVIAL) as (
        client,
        meter,
    ):
        progress("bare floor: %s", bare)
        bare_floor = await _measure(context, client, meter, "GET /bench/trivial/ (bare)", _get(TRIVIAL))
    async with _server(context, "web-floor-stack", web, settings=STACK_FLOOR_SETTINGS) as (client, meter):
        stack_floor = await _measure(context, client, meter, "GET /bench/trivial/ (stack)", _get(TRIVIAL))
    floors = Floors(bare=bare_floor, stack=stack_floor)
    async with _server(context, "web", web) as (client, meter):
        shop = {
            endpoint: await _measure(context, client, meter, endpoint, request, expect)
            for endpoint, (request, expect) in (await _shop_requests(client, tokens, skus)).items()
        }
    async with _server(context, "web-plain", web, settings=PLAIN_SHOP_SETTINGS) as (client, meter):
        plain, fixed, saturated = await _plain_shop(context, client, meter, tokens, skus)
    mode = context.mode
    return [
        *floor_rows(floors),
        *request_rows({**shop, "POST /bench/plain/orders/ (plain Django)": plain}, floors),
        *baseline_rows(mode.web_baseline_rate, fixed, mode.web_saturation_clients, saturated),
        *comparison_rows(context.results, mode.web_baseline_rate, fixed),
    ]


async def _measure(
    context: BenchContext,
    client: httpx.AsyncClient,
    meter: Meter,
    endpoint: str,
    request: Request,
    expect: int = 200,
) -> Spent:
    spent = await cpu_per_request(client, meter, request, count=context.mode.web_requests, expect=expect)
    context.processes.check_alive()
    progress(
        "  %s: %.2f ms web CPU, %.2f ms PostgreSQL CPU per request; %.0f requests/s%s",
        endpoint,
        spent.web_ms(),
        spent.postgres_ms(),
        spent.succeeded / spent.seconds,
        f"; {spent.describe_errors()}" if spent.errors else "",
    )
    return spent


def _get(path: str, headers: dict[str, str] | None = None, **params: str) -> Request:
    return lambda client, number: client.get(path, headers=headers, params=params or None)


async def _shop_requests(
    client: httpx.AsyncClient, tokens: list[str], skus: list[str]
) -> dict[str, tuple[Request, int]]:
    """The shop's requests, each with the status it answers; an order of the first customer's
    to read (it stays REQUESTED: no consumer decides it)."""
    headers = _auth(tokens[0])
    placed = await client.post(
        "/api/orders/", json={"lines": order_lines(skus, 0), "payment_token": PAYMENT_TOKEN}, headers=headers
    )
    placed.raise_for_status()
    order = f"/api/orders/{placed.json()['id']}/"

    def place(client: httpx.AsyncClient, number: int) -> Awaitable[httpx.Response]:
        body = {"lines": order_lines(skus, number), "payment_token": PAYMENT_TOKEN}
        return client.post("/api/orders/", json=body, headers=_auth(tokens[number % len(tokens)]))

    return {
        "GET /health/": (_get("/health/"), 200),
        "GET /api/products/": (_get("/api/products/"), 200),
        "GET /api/orders/{id}/": (_get(order, headers), 200),
        "GET /api/orders/{id}/?wait=0": (_get(order, headers, wait="0"), 200),
        "POST /api/orders/": (place, 202),
    }


async def _plain_shop(
    context: BenchContext, client: httpx.AsyncClient, meter: Meter, tokens: list[str], skus: list[str]
) -> tuple[Spent, Spent, Spent]:
    def place(client: httpx.AsyncClient, number: int) -> Awaitable[httpx.Response]:
        body = {"lines": order_lines(skus, number), "payment_token": PAYMENT_TOKEN}
        return client.post(PLAIN_ORDERS, json=body, headers=_auth(tokens[number % len(tokens)]))

    mode = context.mode
    per_request = await _measure(context, client, meter, f"POST {PLAIN_ORDERS}", place, 201)
    rate, seconds = mode.web_baseline_rate, mode.web_baseline_seconds
    progress("plain Django: %.0f orders/s for %.0fs (open loop)", rate, seconds)
    fixed = await at_rate(client, meter, place, rate=rate, seconds=seconds, expect=201)
    progress("  %.1f ms web + %.1f ms PostgreSQL CPU per order", fixed.web_ms(), fixed.postgres_ms())
    clients, seconds = mode.web_saturation_clients, mode.web_saturation_seconds
    progress("plain Django saturation: %d clients for %.0fs (closed loop)", clients, seconds)
    saturated = await back_to_back(client, meter, place, clients=clients, seconds=seconds, expect=201)
    progress("  %.1f orders/s", saturated.succeeded / saturated.seconds)
    context.processes.check_alive()
    return per_request, fixed, saturated


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


# --- Servers ----------------------------------------------------------------------------------


@asynccontextmanager
async def _server(
    context: BenchContext, name: str, command: str, *, settings: str = "", ready: str = "/health/"
) -> AsyncIterator[tuple[httpx.AsyncClient, Meter]]:
    """Start `command` (bound to a free port through SHOP_BIND, as the Procfile's line is), wait
    until `ready` answers; a client and a meter of its process group; stopped afterwards."""
    port = _free_port()
    environment = {
        **LIFTED_LIMITS,
        "SHOP_BIND": f"127.0.0.1:{port}",
        # Not the directory of a shop `make run` may be running: gunicorn empties it at start.
        "PROMETHEUS_MULTIPROC_DIR": str(context.processes.logs_dir / f"prometheus-{name}"),
    }
    if settings:
        environment["DJANGO_SETTINGS_MODULE"] = settings
    # No `exec`: the line starts with a variable assignment (bash runs a lone command in place).
    process = context.processes.start(name, ["bash", "-c", command], extra_env=environment)
    database = context.database_url.rsplit("/", 1)[-1]
    # Idle connections are dropped before gunicorn's 2 s keep-alive ends (see end_to_end.py).
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50, keepalive_expiry=1.0)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as client:
            await _wait_answering(client, context, ready)
            meter = Meter(process.popen.pid, database)
            await meter.measure_idle()
            progress("  %s idle: %.1f ms CPU per second", name, meter.idle_cpu_ms_per_second)
            yield client, meter
    finally:
        context.processes.stop(process)


def _bare_command() -> str:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return (
        f"{gunicorn} --worker-class sync "
        "--workers 2 bench.web_floor.bare_wsgi:application --bind ${SHOP_BIND}"
    )


async def _wait_answering(client: httpx.AsyncClient, context: BenchContext, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        context.processes.check_alive()
        try:
            if (await client.get(path)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the server did not answer {path} within 60s")


# --- Data -------------------------------------------------------------------------------------


def _stock_orders_view() -> list[str]:
    """Plenty of every demo product but the scarce one in Orders' view of stock, written as
    the Orders consumer would apply Stock's events (none runs here); their skus."""
    from django.db import connection

    from orders import services
    from orders.models import StockLevelView
    from shop.management.commands.seed_demo import PRODUCTS, SCARCE_SKU

    skus = []
    for product in PRODUCTS:
        if product.sku == SCARCE_SKU:
            continue
        current = StockLevelView.objects.filter(sku=product.sku).values_list("version", flat=True).first()
        services.apply_stock_level(
            sku=product.sku,
            name=product.name,
            price=Decimal(product.price),
            available=RESTOCK,
            version=(current or 0) + 1,
        )
        skus.append(product.sku)
    connection.close()
    return skus


def _create_plain_shop(context: BenchContext) -> None:
    """The plain shop's tables in the bench database (its migration, run under its settings),
    and its products: the shop's catalog, with plenty of each."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "migrate",
            "plain_shop",
            f"--settings={PLAIN_SHOP_SETTINGS}",
            "-v",
            "0",
        ],
        cwd=BASE_DIR,
        env=context.processes.env,
        check=True,
    )
    with connect(context.database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO plain_shop_product (sku, price, on_hand) "
            "SELECT sku, price, %s FROM orders_stock_level_view",
            [RESTOCK],
        )
