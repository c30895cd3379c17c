"""The periodic dispatch, run by a real Celery worker against the test database."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from backbone.testing import terminate, wait_for
from orders.events import OrderLine
from outbox.models import OutboxRecord
from shipments import services
from shipments.events import ShipmentDispatched
from shipments.models import Shipment
from shipments.tasks import dispatch_due_shipments


def worker_database_url() -> str:
    """The test database, for a worker process (it reads DATABASE_URL)."""
    db = connection.settings_dict
    credentials = f"{quote(db['USER'])}:{quote(db['PASSWORD'])}@" if db["USER"] else ""
    return f"postgres://{credentials}{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def worker_queue() -> Iterator[str]:
    queue = f"shipments-{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "SHIPMENT_AUTO_DISPATCH_SECONDS": "30",
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--queues", queue]
    quiet = ["--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(
        [*command, *quiet],
        cwd=settings.BASE_DIR,
        env=environment,
    )
    yield queue
    terminate(process, grace=30)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_worker_dispatches_the_shipments_that_waited_long_enough(worker_queue: str) -> None:
    lines = [OrderLine(sku="MUG-1", quantity=1, unit_price=Decimal("9.50"))]
    waited = services.prepare_shipment(order_id=uuid.uuid4(), customer_id=7, lines=lines)
    fresh = services.prepare_shipment(order_id=uuid.uuid4(), customer_id=7, lines=lines)
    Shipment.objects.filter(pk=waited.pk).update(prepared_at=timezone.now() - timedelta(minutes=1))

    dispatch_due_shipments.apply_async(queue=worker_queue)

    # Task results are not stored (CELERY_TASK_IGNORE_RESULT): the rows tell what it did.
    wait_for(
        lambda: Shipment.objects.filter(state="dispatched").exists(),
        timeout=60,
        what="the worker to dispatch a shipment",
    )
    assert dict(Shipment.objects.values_list("id", "state")) == {
        waited.id: "dispatched",
        fresh.id: "prepared",
    }
    [dispatched] = OutboxRecord.objects.filter(event_type=ShipmentDispatched.type_name)
    assert dispatched.payload["shipment_id"] == str(waited.id)
