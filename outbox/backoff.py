"""The relay's waits: backoff (the backbone's, with jitter) and a stop flag that wakes every wait at once."""

import contextlib
import os
import select

from backbone.backoff import Backoff

__all__ = ("Backoff", "StopFlag")


class StopFlag:
    """Set by a signal handler (or a test); every `wait()` returns as soon as it is set.

    A self-pipe rather than `threading.Event`: the relay waits on PostgreSQL's socket and this
    pipe together in one `select()`, so a SIGTERM ends even the longest idle wait at once.
    """

    def __init__(self) -> None:
        self._set = False
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.set_blocking(self._write_end, False)

    def set(self) -> None:
        self._set = True
        # A full pipe already holds plenty of wake-ups.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_end, b"x")

    def is_set(self) -> bool:
        return self._set

    def fileno(self) -> int:
        return self._read_end

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, less if stopped; returns whether it is stopped."""
        if not self._set and timeout > 0:
            select.select([self._read_end], [], [], timeout)
        return self._set

    def close(self) -> None:
        os.close(self._read_end)
        os.close(self._write_end)
