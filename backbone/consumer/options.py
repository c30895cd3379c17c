"""How a consumer runner batches, retries and stops: `RunnerOptions`, from settings or flags."""

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from backbone.backoff import jittered


@dataclass(frozen=True)
class RunnerOptions:
    batch_size: int = 500
    max_attempts: int = 4
    retry_delay: float = 0.2  # before the 2nd attempt; doubles for each further one
    max_retry_delay: float = 5.0
    dead_letter_limit: int = 50
    dead_letter_window: float = 600.0  # seconds; 0 counts the whole run
    poll_timeout: float = 0.5
    status_interval: float = 30.0
    idle_exit: float | None = None  # stop after this many seconds without records
    once: bool = False  # stop as soon as the assigned partitions are caught up

    @classmethod
    def from_settings(cls, **overrides: Any) -> "RunnerOptions":
        configured: dict[str, Any] = {
            "batch_size": settings.CONSUMER_BATCH_SIZE,
            "max_attempts": settings.CONSUMER_MAX_ATTEMPTS,
            "retry_delay": settings.CONSUMER_RETRY_DELAY_SECONDS,
            "dead_letter_limit": settings.CONSUMER_DEAD_LETTER_LIMIT,
            "dead_letter_window": settings.CONSUMER_DEAD_LETTER_WINDOW_SECONDS,
            "status_interval": settings.CONSUMER_STATUS_INTERVAL_SECONDS,
        }
        configured.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**configured)

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based), jittered (backbone/backoff.py)."""
        return jittered(min(self.retry_delay * 2.0 ** (attempt - 1), self.max_retry_delay))
