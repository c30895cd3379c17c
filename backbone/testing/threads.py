"""Real concurrency in a test: calls released at the same moment, each on its own connection."""

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def run_together(calls: Sequence[Callable[[], T]], *, timeout: float = 120.0) -> list[T]:
    """Run each call in a thread of its own, all released by one barrier so that they race;
    return their results in the order of `calls`, or raise what they raised as a group.

    Each thread uses its own database connection (Django's are per thread), closed when the
    call is done, so the calls race in PostgreSQL as concurrent requests or consumers would.
    """
    start = threading.Barrier(len(calls))
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int, call: Callable[[], T]) -> None:
        try:
            start.wait(timeout=30)
            results[index] = call()
        except BaseException as error:  # raised below: a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} of {len(calls)} calls still running after {timeout:g} s"
    if errors:
        raise BaseExceptionGroup(f"{len(errors)} of {len(calls)} concurrent calls failed", errors)
    return [results[index] for index in range(len(calls))]
