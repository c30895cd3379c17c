"""Heartbeat rows: how a relay or consumer process tells `manage.py status` it is alive.

The loops call `beat()` often (every poll); it writes at most once per
HEARTBEAT_INTERVAL_SECONDS, so the cost is one upsert every few seconds, never one per record.
A heartbeat must never stop the work it reports on: while PostgreSQL is away it logs once and
tries again at the next interval.
"""

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone

from backbone.conf import backbone_settings

from .models import ProcessHeartbeat

log = logging.getLogger(__name__)

RATE_WINDOW = 60.0  # seconds over which the records/s of a heartbeat are measured


class Heartbeat:
    """One process's heartbeat row: refreshed at most every `interval` seconds."""

    def __init__(
        self,
        *,
        role: str,
        name: str,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.role, self.name = role, name
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._interval = backbone_settings.HEARTBEAT_INTERVAL_SECONDS if interval is None else interval
        self._clock = clock
        self._last: float | None = None
        self._state = ""
        self._since: datetime | None = None
        self._counts: deque[tuple[float, int]] = deque()
        self._failing = False

    def due(self, state: str) -> bool:
        """Whether `beat(state=...)` would write now: callers skip gathering facts otherwise."""
        return state != self._state or self._last is None or self._clock() - self._last >= self._interval

    def beat(
        self, *, state: str, count: int = 0, facts: Mapping[str, Any] | None = None, force: bool = False
    ) -> None:
        """Record `state` and `facts`; `count` is a running total of records, for the rate."""
        now = self._clock()
        if state != self._state:
            self._state, self._since, force = state, timezone.now(), True
        if not force and self._last is not None and now - self._last < self._interval:
            return
        self._last = now
        self._counts.append((now, count))
        while len(self._counts) > 1 and now - self._counts[0][0] > RATE_WINDOW:
            self._counts.popleft()
        first_time, first_count = self._counts[0]
        # A new leader term counts from zero again: never a negative rate.
        rate = max(0.0, (count - first_count) / (now - first_time)) if now > first_time else 0.0
        self._write({**(facts or {}), "rate": round(rate, 2)})

    def stop(self) -> None:
        """A clean exit removes the row: the process is gone now, not when its row goes stale."""
        try:
            if not connection.in_atomic_block:
                self._mine().delete()
        except DatabaseError as error:
            log.debug("could not remove the heartbeat of %s %s: %s", self.role, self.name, error)

    def _write(self, facts: dict[str, Any]) -> None:
        if connection.in_atomic_block:
            return  # never inside a handler's transaction: it would commit or roll back with it
        try:
            updated = self._mine().update(
                state=self._state, since=self._since, facts=facts, beat_at=timezone.now()
            )
            if not updated:
                ProcessHeartbeat.objects.create(
                    role=self.role,
                    name=self.name,
                    host=self.host,
                    pid=self.pid,
                    state=self._state,
                    since=self._since,
                    facts=facts,
                )
        except DatabaseError as error:
            if not self._failing:
                log.warning("%s %s: heartbeat not recorded (%s); trying again", self.role, self.name, error)
            self._failing = True
            with suppress(DatabaseError):
                connection.close()  # a broken connection is replaced on the next query
            return
        self._failing = False

    def _mine(self) -> Any:
        return ProcessHeartbeat.objects.filter(role=self.role, name=self.name, host=self.host, pid=self.pid)
