"""Write the marks of one batch while the next batches are read and produced.

Marking is the relay's most expensive statement (every mark is a new row version and new
index entries), so it runs in worker threads, each on a connection of its own: PostgreSQL
marks batch N (and N+1 on another core) while the relay reads batch N+2 and Kafka stores it.
At most one batch per worker is in flight; a worker's error surfaces in the relay's thread
at the next hand-over.
"""

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from .store import OutboxStore, Placement


class BackgroundMarker:
    def __init__(self, stores: list[OutboxStore]) -> None:
        self._idle = list(stores)
        self._executor = ThreadPoolExecutor(max_workers=len(stores), thread_name_prefix="outbox-marker")
        self._in_flight: deque[tuple[Future[int], OutboxStore]] = deque()

    def submit(self, placements: list[Placement], *, published_at: datetime | Sequence[datetime]) -> None:
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


class HeldMarks:
    """The marks of wake-ups that found a few rows, held back up to `hold` seconds so that
    several wake-ups' marks go in one statement: at 20 orders/s a wake-up comes every few
    tens of milliseconds, and each mark is a transaction of its own.

    Held rows are on Kafka but not marked yet: the next scan reads them again, and the relay
    leaves them out (`is_held`). Should the relay die meanwhile, they are published again, a
    duplicate consumers drop by ce_id, as with a mark lost to `synchronous_commit = off`.
    """

    def __init__(self, hold: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold = hold
        self._clock = clock
        self._placements: list[Placement] = []
        self._times: list[datetime] = []
        self._ids: set[int] = set()
        self._since: float | None = None

    def __len__(self) -> int:
        return len(self._placements)

    def add(self, placements: list[Placement], *, published_at: datetime) -> None:
        if not placements:
            return
        if self._since is None:
            self._since = self._clock()
        self._placements.extend(placements)
        self._times.extend([published_at] * len(placements))
        self._ids.update(placement.row_id for placement in placements)

    def is_held(self, row_id: int) -> bool:
        return row_id in self._ids

    def due_in(self) -> float | None:
        """Seconds until the held marks must be written (None: nothing held)."""
        if self._since is None:
            return None
        return max(0.0, self._since + self.hold - self._clock())

    def hand_to(self, marker: BackgroundMarker) -> None:
        """Submit every held mark, in one statement."""
        if not self._placements:
            return
        placements, times = self._placements, self._times
        self._placements, self._times, self._ids, self._since = [], [], set(), None
        marker.submit(placements, published_at=times)
