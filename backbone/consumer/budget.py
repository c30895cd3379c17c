"""The limit on dead letters: a bug in a handler must not send every record there.

Past `limit` dead letters within a sliding window, the runner stops with
DeadLetterLimitReached instead of writing more; the batch that would exceed it rolls back,
so work done before it stays committed and nothing past it is lost.
"""

from collections import deque
from collections.abc import Callable


class DeadLetterLimitReached(RuntimeError):
    """Too many dead letters in too little time: the runner stops instead of writing more."""


class DeadLetterBudget:
    """At most `limit` dead letters within a sliding window of `window` seconds."""

    def __init__(self, *, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._spent: deque[float] = deque()

    def allows(self, count: int) -> bool:
        if self.window > 0:
            horizon = self._clock() - self.window
            while self._spent and self._spent[0] < horizon:
                self._spent.popleft()
        return len(self._spent) + count <= self.limit

    def spend(self, count: int) -> None:
        now = self._clock()
        self._spent.extend([now] * count)

    def describe(self) -> str:
        span = f"within {self.window:g} s" if self.window > 0 else "in this run"
        return f"{self.limit} dead letters {span}"

    def exceeded(self, context: str) -> DeadLetterLimitReached:
        """The error that stops the runner of `context`, saying what to do next."""
        return DeadLetterLimitReached(
            f"consumer {context} stopped: more than {self.describe()} "
            f"(CONSUMER_DEAD_LETTER_LIMIT); a handler is probably broken. Work done so far is "
            f"committed; fix the cause, then restart it and replay the dead letters"
        )
