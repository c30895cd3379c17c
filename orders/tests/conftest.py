"""Fixtures of the end-to-end tests: the shop's real processes on the test database.

The processes (relay, one consumer per context, a Celery worker, gunicorn) start once per test
module, in a Kafka namespace of their own, with a file email backend so a test can count the
emails. Each test waits for the system to go quiet before its data is flushed.
"""

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.db import connection

from backbone.conf import backbone_settings
from backbone.provisioning import ensure_topics
from backbone.subscriptions import subscriptions
from backbone.testing import (
    KafkaTail,
    ShopProcesses,
    Timeout,
    consumer_lag,
    database_url,
    free_port,
    python_argv,
    wait_for,
)
from backbone.testing.settings import override_backbone
from backbone.topics import publishing_contexts


def shop_contexts() -> list[str]:
    """The shop's contexts: the apps that publish (each runs a consumer)."""
    return sorted(publishing_contexts())


# One INFO line per request would bury the processes' logs in a failure report.
logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture(scope="session", autouse=True)
def _session_celery_queue() -> None:
    """Tasks enqueued by this session (on_commit in transactional tests) go to the session's
    queue, which only its own end-to-end worker reads: never to a running shop's worker."""
    from config.celery import app

    app.conf.task_default_queue = f"{backbone_settings.KAFKA_NAMESPACE}celery"


@dataclass
class Shop:
    processes: ShopProcesses
    base_url: str
    email_dir: Path
    kafka: KafkaTail
    metrics_ports: dict[str, int]  # process name -> its --metrics-port (web: base_url/metrics)
    namespace: str = ""  # the Kafka namespace: consumer groups are named <namespace><context>

    def emails(self) -> list[str]:
        return [path.read_text(errors="replace") for path in sorted(self.email_dir.glob("*.log"))]

    def emails_about(self, order_id: str, kind: str) -> int:
        return sum(
            f"X-Order-Id: {order_id}" in email and f"X-Notification-Kind: {kind}" in email
            for email in self.emails()
        )

    def lag(self) -> int:
        for context in shop_contexts():
            __import__(f"{context}.handlers")
        return consumer_lag({context: subscriptions.topics_for(context) for context in shop_contexts()})

    def wait_until_quiet(self, timeout: float = 90.0) -> None:
        """Every committed event published and every consumer group caught up, twice in a row."""
        from outbox.models import OutboxRecord

        def quiet() -> bool:
            return not OutboxRecord.objects.filter(published_at__isnull=True).exists() and self.lag() == 0

        wait_for(lambda: quiet() and quiet(), timeout=timeout, interval=0.5, what="the shop to go quiet")


@pytest.fixture(scope="module")
def shop_namespace() -> Iterator[str]:
    """A Kafka namespace of the shop's own: the backbone's tests write deliberately broken
    records to the session's topics, which a real shop would never see."""
    namespace = f"{backbone_settings.KAFKA_NAMESPACE}e2e-{uuid.uuid4().hex[:6]}."
    with override_backbone(KAFKA_NAMESPACE=namespace):
        ensure_topics(partitions=3)
        yield namespace


@pytest.fixture(scope="module")
def shop_env() -> dict[str, str]:
    """More environment for the shop's processes: a test module overrides it."""
    return {}


@pytest.fixture(scope="module")
def shop(django_db_setup, django_db_blocker, shop_namespace, shop_env, tmp_path_factory) -> Iterator[Shop]:
    work = tmp_path_factory.mktemp("shop")
    email_dir = work / "emails"
    email_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "KAFKA_NAMESPACE": shop_namespace,
        # The queue the session's on_commit tasks go to (see _session_celery_queue).
        "CELERY_TASK_DEFAULT_QUEUE": f"{os.environ['KAFKA_NAMESPACE']}celery",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(email_dir),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        "CONSUMER_STATUS_INTERVAL_SECONDS": "5",
        # Heartbeats (manage.py status, the backbone overview) fresh within a second.
        "HEARTBEAT_INTERVAL_SECONDS": "1",
        # Beat re-enqueues emails whose task died with a SIGKILLed consumer, quickly here.
        "ORDER_NOTIFICATION_SWEEP_SECONDS": "2",
        "ORDER_NOTIFICATION_GRACE_SECONDS": "3",
        # Shipments wait for the staff API in these tests, not for the periodic dispatch.
        "SHIPMENT_AUTO_DISPATCH_SECONDS": "3600",
        **shop_env,
    }
    processes = ShopProcesses(env=env, log_dir=work)
    consumers = [*(f"consume-{c}" for c in shop_contexts()), "consume-stock-2"]
    metrics_ports = {name: free_port() for name in ["relay", *consumers]}
    processes.add("relay", python_argv("manage.py", "relay", "--metrics-port", str(metrics_ports["relay"])))
    for context in shop_contexts():
        name = f"consume-{context}"
        processes.add(
            name, python_argv("manage.py", "consume", context, "--metrics-port", str(metrics_ports[name]))
        )
    # A second Stock consumer in the same group takes some of the three partitions, so that
    # reservations for one sku are made by two processes at once and really race.
    processes.add(
        "consume-stock-2",
        python_argv("manage.py", "consume", "stock", "--metrics-port", str(metrics_ports["consume-stock-2"])),
    )
    processes.add(
        "worker",
        python_argv(
            "-m", "celery", "-A", "config", "worker", "--pool=threads", "--concurrency=4",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ),
    )  # fmt: skip
    processes.add(
        "beat",
        python_argv(
            "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
            "--schedule", str(work / "celerybeat-schedule"),
        ),
    )  # fmt: skip
    processes.add(
        "web",
        python_argv(
            "-m", "gunicorn", "-c", "config/gunicorn_config.py", "config.asgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60",
        ),
    )  # fmt: skip
    processes.start()
    base_url = f"http://127.0.0.1:{port}"
    kafka = KafkaTail()
    shop = Shop(
        processes=processes,
        base_url=base_url,
        email_dir=email_dir,
        kafka=kafka,
        metrics_ports=metrics_ports,
        namespace=shop_namespace,
    )
    try:
        wait_for(lambda: _answers(f"{base_url}/health/"), timeout=60, interval=0.3, what="gunicorn to answer")
        yield shop
    finally:
        processes.stop()
        kafka.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def live_shop(shop: Shop, transactional_db, request: pytest.FixtureRequest) -> Iterator[Shop]:
    """The running shop for one test; its processes' logs are shown when the test fails."""
    shop.processes.start()  # whatever a previous test stopped or killed
    yield shop
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    try:
        shop.processes.assert_running()
        shop.wait_until_quiet()  # before the flush: nothing may still be working on this test's rows
    except (AssertionError, Timeout):
        print(shop.processes.logs())
        raise
    if failed:
        print(shop.processes.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
