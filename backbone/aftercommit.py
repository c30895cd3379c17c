"""Side effects that run once the transaction commits, best effort: they never raise.

Services start Celery tasks and ring long-poll doorbells only after their transaction
commits. By then the rows are in: a failing side effect (Redis away) must be logged and left
to whatever picks lost work up (orders' beat sweep re-enqueues pending notifications), never
raised into the caller. A consumer that raised there would stop with its batch committed
and its offsets not, and stay down until restarted.

Django's `on_commit(..., robust=True)` is not enough: its own log line reads
`func.__qualname__`, which a `functools.partial` lacks, so the failure turned into an
AttributeError that took `manage.py consume orders` down. Here each side effect is wrapped in
a named function that logs the failure itself, in the story (correlation id) that caused it.

While Redis is away, every enqueue waits for it to fail: a connection refused fails at once,
but a Redis that accepts and never answers (hung, or a network that drops packets) holds the
caller for the broker's socket timeout (settings.py). To keep a consumer applying events at
a reasonable rate, the next enqueues within `BACKBONE_ENQUEUE_COOLDOWN_SECONDS` of a failure
are skipped (logged) without trying.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from celery import Task
from django.db import transaction

from backbone.conf import backbone_settings

from .correlation import NoSingleStoryError, correlation_scope, current_causation_id, current_correlation_id
from .tracing import continued, current_traceparent, current_tracestate

log = logging.getLogger(__name__)


class Cooldown:
    """Remembers a failure of a service for a while, so callers skip it instead of waiting
    for it to fail again (each failure can take a connect or read timeout)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    def active(self) -> bool:
        return self._clock() < self._until

    def start(self, seconds: float) -> None:
        self._until = self._clock() + seconds

    def reset(self) -> None:
        self._until = 0.0


_broker = Cooldown()


def enqueue_on_commit(task: "Task[..., Any]", *args: Any) -> None:
    """Enqueue `task(*args)` after the current transaction commits; log a failure, never raise.

    Only for tasks whose lost enqueue something else recovers (a sweep of pending rows): when
    Redis is away, the task is not enqueued.
    """
    description = f"task {task.name}{_arguments(args)}"
    story = _story_scope()

    def enqueue() -> None:
        with story:
            if _broker.active():
                log.warning(
                    "not enqueuing %s (left to its sweep): the Celery broker failed moments ago", description
                )
                return
            try:
                task.delay(*args)
            except Exception as error:  # kombu's OperationalError, a RuntimeError of the backend...
                _broker.start(backbone_settings.ENQUEUE_COOLDOWN_SECONDS)
                log.warning("could not enqueue %s (left to its sweep): %s", description, _describe(error))
                return
            _broker.reset()

    transaction.on_commit(enqueue)


def call_on_commit(function: Callable[..., object], *args: Any, description: str) -> None:
    """Call `function(*args)` after the current transaction commits; log a failure, never raise."""
    story = _story_scope()

    def call() -> None:
        with story:
            try:
                function(*args)
            except Exception as error:
                log.warning("%s failed after commit: %s", description, _describe(error))

    transaction.on_commit(call)


def _story_scope() -> AbstractContextManager[object]:
    """The caller's story and trace context, to log in after commit (a consumer commits after
    the handler's scope ended; inside a batch handler there is no single story)."""
    try:
        correlation_id, causation_id = current_correlation_id(), current_causation_id()
    except NoSingleStoryError:
        return nullcontext()
    if correlation_id is None:
        return nullcontext()
    return _in_story(correlation_id, causation_id, current_traceparent(), current_tracestate())


@contextmanager
def _in_story(
    correlation_id: str, causation_id: str | None, traceparent: str | None, tracestate: str | None
) -> Iterator[None]:
    # Entered only when the side effect runs, after commit: not at on_commit() time.
    with (
        correlation_scope(correlation_id, causation_id=causation_id),
        continued(traceparent, tracestate),
    ):
        yield


def _arguments(args: tuple[Any, ...]) -> str:
    return "(" + ", ".join(map(repr, args)) + ")"


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
