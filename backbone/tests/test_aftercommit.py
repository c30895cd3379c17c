"""Side effects after commit never raise into the code that committed (a consumer, a request)."""

import logging
from functools import partial

import pytest
from django.db import transaction

from backbone import tracing
from backbone.aftercommit import call_on_commit
from backbone.correlation import correlation_scope

pytestmark = pytest.mark.django_db(transaction=True)


def ring(order: str, *, broken: bool) -> None:
    if broken:
        raise ConnectionError(f"no doorbell for {order}")


def test_a_failing_side_effect_is_logged_in_its_story_and_the_commit_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="backbone.aftercommit")
    with correlation_scope("story-42"), transaction.atomic():
        # A partial has no __qualname__: Django's own robust on_commit crashed logging it.
        call_on_commit(partial(ring, broken=True), "order-1", description="wake-up of order-1")
    [record] = caplog.records
    assert record.getMessage() == (
        "wake-up of order-1 failed after commit: ConnectionError: no doorbell for order-1"
    )
    assert record.correlation_id == "story-42"  # type: ignore[attr-defined]


def test_a_side_effect_after_a_handlers_scope_ended_logs_in_its_story_and_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="backbone.aftercommit")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with transaction.atomic():
        # A consumer commits its batch after each handler's story and span ended.
        with correlation_scope("story-43"), tracing.span_scope("process x", parent, kind="consumer"):
            traceparent = tracing.current_traceparent()
            call_on_commit(partial(ring, broken=True), "order-2", description="wake-up of order-2")
        assert tracing.current_traceparent() is None
    [record] = caplog.records
    assert record.correlation_id == "story-43"  # type: ignore[attr-defined]
    assert record.traceparent == f" traceparent={traceparent}"  # type: ignore[attr-defined]
