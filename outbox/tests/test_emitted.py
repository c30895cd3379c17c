"""`outbox.testing.emitted`, the helper the service tests assert their events with."""

import pytest
from django.db import transaction

from outbox.emit import emit
from outbox.testing import emitted

from .conftest import ContractFactory

pytestmark = pytest.mark.django_db


def test_emitted_decodes_one_types_events_oldest_first(contracts: ContractFactory) -> None:
    probe, other = contracts("RelayProbe"), contracts("OtherProbe")
    with transaction.atomic():
        emit(probe(order_id="a", step=2))
        emit(other(order_id="a", step=1))
        emit(probe(order_id="b", step=1))

    assert emitted(probe) == [probe(order_id="a", step=2), probe(order_id="b", step=1)]
    assert emitted(other) == [other(order_id="a", step=1)]
    assert emitted(contracts("SilentProbe")) == []
