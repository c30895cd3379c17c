"""A PostgreSQL restart or failover under the web process: the next requests do not notice.

The web process keeps its connections between requests in a pool (DATABASE_POOL_MAX_SIZE,
set by config/asgi.py); its checkout (backbone/postgresql/base.py) tests each connection and
replaces a dead one at once, so sessions PostgreSQL terminated cost a round trip each, not a 500
or the pool's backoff. The test terminates only the sessions of its own gunicorn, on the test
database. A Celery worker keeps its connections between tasks too (CELERY_DB_REUSE_MAX) and
closes a broken one before the next task (config/celery.py)."""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from backbone.conf import backbone_settings
from backbone.testing import database_url, free_port, terminate, wait_for
from orders.models import Notification, NotificationKind, NotificationStatus, OrderState
from orders.tasks import send_notification_email
from orders.tests.factories import make_user, place, stock_level

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def terminate_sessions(application_name: str) -> int:
    """Terminate the sessions a process opened on the test database, as a restart does."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


def start(argv: list[str], *, application_name: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
        "PGAPPNAME": application_name,  # libpq names the sessions, so the test finds them
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, *argv], cwd=settings.BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT
        )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    name, port, log = f"web-{uuid.uuid4().hex[:8]}", free_port(), tmp_path / "web.log"
    process = start(
        ["-m", "gunicorn", "-c", "config/gunicorn_config.py", "config.asgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        application_name=name,
        log=log,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", name, log
    finally:
        terminate(process)


def test_every_request_after_the_web_sessions_were_terminated_answers(web: tuple[str, str, Path]) -> None:
    """A failover costs latency, never an error: no request after it answers 500."""
    base_url, name, log = web
    stock_level("KB-1", available=50)
    token = Token.objects.create(user=make_user("frank")).key
    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=15)
    line = {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_visa"}
    durations: list[float] = []

    def call(kind: str) -> int:
        """One request of the kind; its status (0: no answer in 15 s, past the pool's timeout)."""
        started = time.monotonic()
        try:
            if kind == "place":
                return client.post("/api/orders/", json=line).status_code
            path = "/api/products/" if kind == "products" else f"/api/orders/{placed}/"
            return client.get(path).status_code
        except httpx.TransportError:
            return 0
        finally:
            durations.append(time.monotonic() - started)

    wait_for(lambda: call("products") == 200, timeout=60, what="gunicorn to answer")
    placed = client.post("/api/orders/", json=line).json()["id"]
    kinds = ["products", "place", "order"] * 4
    # Several requests at once, over and over: both workers' pools hold several connections.
    with ThreadPoolExecutor(12) as pool:
        for _ in range(5):
            assert set(pool.map(call, kinds)) <= {200, 202}
    assert terminate_sessions(name) >= 2
    durations.clear()

    statuses = [call(kind) for kind in kinds]

    expected = [202 if kind == "place" else 200 for kind in kinds]
    assert statuses == expected, log.read_text(errors="replace")
    assert max(durations) < 2.0, durations  # no backoff per dead connection
    client.close()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A Celery worker as the Procfile runs it (pool and connection reuse from settings)."""
    name, queue, log = f"worker-{uuid.uuid4().hex[:8]}", f"restart-{uuid.uuid4().hex[:8]}", tmp_path / "w.log"
    process = start(
        ["-m", "celery", "-A", "config", "worker", "--queues", queue, "--concurrency", "2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"],
        application_name=name,
        log=log,
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )  # fmt: skip
    try:
        yield queue, name, log
    finally:
        terminate(process)


def test_a_worker_keeps_its_session_between_emails_and_replaces_one_that_was_terminated(
    worker: tuple[str, str, Path],
) -> None:
    queue, name, log = worker
    stock_level("KB-1", available=50)
    customer = make_user("erin")

    def send() -> None:
        order = place(customer, ("KB-1", 1))
        order.state = OrderState.CONFIRMED
        order.save(update_fields=["state"])
        notification = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)
        send_notification_email.apply_async(args=[notification.id], queue=queue)
        wait_for(
            lambda: Notification.objects.get(id=notification.id).status == NotificationStatus.SENT,
            timeout=10,
            what=f"the email of order {order.id} (worker log: {log})",
        )

    for _ in range(3):
        send()
    # Celery's own fixup closed every session after each task: a new backend per email.
    assert terminate_sessions(name) >= 1, "the worker kept no session between tasks"

    send()  # at once, not after a retry's backoff: the terminated session is replaced first

    assert "OperationalError" not in log.read_text(errors="replace")
