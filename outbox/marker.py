"""Write the marks of one batch while the next batch is read and produced.

Marking is the relay's most expensive statement (every mark is a new row version and new
index entries), so it runs on a connection of its own in a worker thread: PostgreSQL marks
batch N while the relay reads batch N+1 and Kafka stores it. One batch is marked at a time,
and the worker's errors surface in the relay's thread at the next hand-over.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from .store import OutboxStore, Placement


class BackgroundMarker:
    def __init__(self, store: OutboxStore) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-marker")
        self._pending: Future[int] | None = None

    def submit(self, placements: list[Placement], *, published_at: datetime) -> None:
        """Mark these rows published, in the background, after the previous batch's marks."""
        self.wait()
        if placements:
            self._pending = self._executor.submit(
                self._store.mark_published, placements, published_at=published_at
            )

    def wait(self) -> int:
        """Block until the marks handed over are written; returns how many rows they marked."""
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else 0

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._executor.shutdown(wait=True)
