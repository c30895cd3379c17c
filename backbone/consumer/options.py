"""How a consumer runner batches, retries and stops: `RunnerOptions`, from settings or flags."""

from dataclasses import dataclass
from typing import Any

from backbone.backoff import jittered
from backbone.conf import backbone_settings
from backbone.conf import field_from_setting as _setting


@dataclass(frozen=True)
class RunnerOptions:
    batch_size: int = _setting("CONSUMER_BATCH_SIZE")
    max_attempts: int = _setting("CONSUMER_MAX_ATTEMPTS")
    # before the 2nd attempt; doubles for each further one
    retry_delay: float = _setting("CONSUMER_RETRY_DELAY_SECONDS")
    max_retry_delay: float = 5.0
    dead_letter_limit: int = _setting("CONSUMER_DEAD_LETTER_LIMIT")
    dead_letter_window: float = _setting("CONSUMER_DEAD_LETTER_WINDOW_SECONDS")  # 0 counts the whole run
    poll_timeout: float = 0.5
    status_interval: float = _setting("CONSUMER_STATUS_INTERVAL_SECONDS")
    idle_exit: float | None = None  # stop after this many seconds without records
    once: bool = False  # stop as soon as the assigned partitions are caught up
    # Seconds before each retry, e.g. (1, 5, 30, 120, 600): a failed record waits in the table
    # (not in the consumer) until due, then after the last one becomes a dead letter. Empty:
    # `max_attempts` in-process retries with `backoff()`.
    retry_schedule: tuple[float, ...] = _setting("CONSUMER_RETRY_SCHEDULE")

    @classmethod
    def from_settings(cls, context: str | None = None, **overrides: Any) -> "RunnerOptions":
        """The settings with the context's retry schedule (BACKBONE["CONSUMER_RETRY_SCHEDULES"]
        [context], else BACKBONE["CONSUMER_RETRY_SCHEDULE"]), then `overrides` that are not None."""
        schedules = backbone_settings.CONSUMER_RETRY_SCHEDULES
        configured: dict[str, Any] = {}
        if context is not None and context.lower() in schedules:
            configured["retry_schedule"] = schedules[context.lower()]
        configured.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**configured)

    @property
    def attempts(self) -> int:
        """Tries before a failing record becomes a dead letter."""
        return len(self.retry_schedule) + 1 if self.retry_schedule else self.max_attempts

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based), jittered (backbone/backoff.py)."""
        return jittered(min(self.retry_delay * 2.0 ** (attempt - 1), self.max_retry_delay))


def parse_schedule(text: str | tuple[float, ...] | None) -> tuple[float, ...]:
    """ "1,5,30" -> (1.0, 5.0, 30.0); empty or None -> () (no schedule)."""
    if text is None or isinstance(text, tuple):
        return text or ()
    try:
        delays = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"retry schedule {text!r}: expected seconds separated by commas") from None
    if any(delay < 0 for delay in delays):
        raise ValueError(f"retry schedule {text!r}: delays cannot be negative")
    return delays
