"""Write the marks of one batch while the next batches are read and produced.

Marking is the relay's most expensive statement (every mark is a new row version and new
index entries), so it runs in worker threads, each on a connection of its own: PostgreSQL
marks batch N (and N+1 on another core) while the relay reads batch N+2 and Kafka stores it.
At most one batch per worker is in flight; a worker's error surfaces in the relay's thread
at the next hand-over.
"""

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from .store import OutboxStore, Placement


class BackgroundMarker:
    def __init__(self, stores: list[OutboxStore]) -> None:
        self._idle = list(stores)
        self._executor = ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="outbox-marker")
        self._in_flight: deque[tuple[Future[int], OutboxStore]] = deque()

    def submit(self, placements: list[Placement], *, published_at: datetime) -> None:
        """Mark these rows published, in the background (waits while every worker is busy)."""
        if not placements:
            return
        if not self._idle:
            self._finish_oldest()
        store = self._idle.pop()
        future = self._executor.submit(store.mark_published, placements, published_at=published_at)
        self._in_flight.append((future, store))

    def wait(self) -> int:
        """Block until every mark handed over is written; returns how many rows they marked."""
        marked = 0
        while self._in_flight:
            marked += self._finish_oldest()
        return marked

    def _finish_oldest(self) -> int:
        future, store = self._in_flight.popleft()
        try:
            return future.result()
        finally:
            self._idle.append(store)

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._executor.shutdown(wait=True)
