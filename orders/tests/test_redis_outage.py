"""Redis goes away under a running `manage.py consume orders`: orders keep being confirmed.

The confirmation email is a Celery task enqueued after the commit. With Redis down the
enqueue fails; that failure is logged (with the order's correlation id) and left to the beat
sweep of pending notifications, and the consumer goes on. The test runs a disposable
redis-server of its own (the shared one is never touched), stopped or hung (SIGSTOP: it
accepts connections and never answers), and the real consumer process.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal

import pytest
import redis
from django.conf import settings
from django.db import connection

from backbone.conf import backbone_settings
from backbone.kafka import group_id
from backbone.subscriptions import subscriptions
from backbone.testing import LoggedProcess, database_url, free_port, wait_for
from backbone.tests.consumer_probe import send_event, start_group_at_end
from orders.models import Notification, NotificationStatus, Order, OrderState
from orders.tests.factories import make_user, place, stock_level
from payments.events import PaymentProcessed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

QUEUE = f"redis-outage-{uuid.uuid4().hex[:6]}"  # this test's Celery queue, in its own Redis


class DisposableRedis:
    """A redis-server of the test's own, on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, what="the disposable redis-server")

    def down(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a hung server must run to exit
            self.process.terminate()
            self.process.wait(timeout=10)

    def hang(self) -> None:
        """Accepts connections (the kernel does) and never answers, like a hung server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False


class VanishingPath:
    """A TCP relay between the web process and Redis whose path can vanish without a word.

    `vanish` is what a host that is gone, a lost NAT entry or a partition leave behind: the
    connections open now stay open and carry nothing more, in either direction (no FIN, no RST
    ever reaches the client), and new connections are refused. `restore` listens again: new
    connections reach Redis, the vanished ones stay silent."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._target = target_port
        self._links: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def vanish(self) -> None:
        for _, _, cut in self._links:
            cut.set()
        if self._listener is not None:
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes its accept()
            self._listener.close()
            self._listener = None

    def close(self) -> None:
        self.vanish()
        for client, upstream, _ in self._links:
            client.close()
            upstream.close()

    def _accept(self, listener: socket.socket) -> None:
        with suppress(OSError):  # the listener was closed
            while True:
                client = listener.accept()[0]
                try:
                    upstream = socket.create_connection(("127.0.0.1", self._target), timeout=2)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                cut = threading.Event()
                self._links.append((client, upstream, cut))
                for source, target in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, target, cut), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, cut: threading.Event) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if cut.is_set():
                    return  # dropped, and both ends left open
                target.sendall(data)
            if not cut.is_set():
                target.shutdown(socket.SHUT_WR)  # an orderly close travels on, as it would


@pytest.fixture
def disposable_redis() -> Iterator[DisposableRedis]:
    server = DisposableRedis()
    server.up()
    try:
        yield server
    finally:
        server.down()


def process_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": redis_url,
        "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def orders_consumer(env: dict[str, str]) -> LoggedProcess:
    """`manage.py consume orders`, its log collected as it goes."""
    return LoggedProcess([sys.executable, "manage.py", "consume", "orders"], env=env)


def validated_orders(count: int) -> list[Order]:
    stock_level("KB-1", available=100, price="20.00")
    customer = make_user(f"redis-outage-{uuid.uuid4().hex[:6]}")
    orders = [place(customer, ("KB-1", 1)) for _ in range(count)]
    Order.objects.filter(id__in=[order.id for order in orders]).update(state=OrderState.VALIDATED)
    return orders


def pay(order: Order) -> str:
    """Publish the PaymentProcessed that confirms `order`, in the order's story."""
    event = PaymentProcessed(order_id=order.id, payment_id=uuid.uuid4(), amount=Decimal("20.00"))
    return send_event(event, correlation_id=order.correlation_id).correlation_id


def confirmed(orders: list[Order]) -> int:
    return Order.objects.filter(id__in=[o.id for o in orders], state=OrderState.CONFIRMED).count()


@pytest.mark.parametrize("outage", ["down", "hung"])
def test_the_orders_consumer_keeps_confirming_orders_while_redis_is_away(
    disposable_redis: DisposableRedis, kafka_topics: list[str], outage: str
) -> None:
    __import__("orders.handlers")
    start_group_at_end(group_id("orders"), tuple(subscriptions.topics_for("orders")))
    orders = validated_orders(5)
    consumer = orders_consumer(process_env(disposable_redis.url))
    try:
        wait_for(lambda: "consume orders: group" in consumer.log, timeout=60, what="the consumer to start")
        disposable_redis.down() if outage == "down" else disposable_redis.hang()

        first_story = pay(orders[0])
        wait_for(lambda: confirmed(orders[:1]) == 1 or not consumer.alive(), timeout=60, what="order 1")
        started = time.monotonic()
        for order in orders[1:]:
            pay(order)
            time.sleep(0.2)  # one event per batch, as they come in a running shop

        def named() -> list[str]:  # the log lines that name an email it did not enqueue
            return [line for line in consumer.lines if "orders.tasks.send_notification_email" in line]

        # Applied, and the side effects after each commit done: the consumer is free again.
        wait_for(
            lambda: (confirmed(orders) == 5 and len(named()) == 5) or not consumer.alive(),
            timeout=30,
            what="all 5 orders and their 5 log lines",
        )
        applied_in = time.monotonic() - started

        assert consumer.alive(), consumer.log
        assert confirmed(orders) == 5, consumer.log
        assert applied_in < 10, f"4 confirmations took {applied_in:.1f} s with Redis {outage}"
        assert "could not enqueue task orders.tasks.send_notification_email" in named()[0], consumer.log
        assert f"[{first_story} " in named()[0]  # in the story of the order it was for (then its trace)
        assert "Traceback" not in consumer.log
    finally:
        consumer.stop()
    assert Notification.objects.filter(order__in=orders, status=NotificationStatus.PENDING).count() == 5

    # Redis is back: the beat sweep's task enqueues the five emails (sending stays once).
    disposable_redis.up() if outage == "down" else disposable_redis.resume()
    sweep = subprocess.run(
        [
            sys.executable, "manage.py", "shell", "-c",
            "from orders.tasks import enqueue_pending_notifications as sweep; print(sweep())",
        ],
        cwd=settings.BASE_DIR,
        env=process_env(disposable_redis.url, ORDER_NOTIFICATION_GRACE_SECONDS="0"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.strip().splitlines()[-1] == "5"
    # A hung Redis may still run an enqueue it read before it hung: that email is claimed once.
    assert disposable_redis.client().llen(QUEUE) >= 5
