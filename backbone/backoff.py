"""Exponential backoff with a cap and jitter, for every retry loop of the backbone.

Jitter matters once several processes lose the same service: after a PostgreSQL restart the
relay and four consumers would otherwise retry at 1 s, 2 s, 4 s ... in lockstep, and arrive
together at a server that is still warming up. Each delay is drawn from the upper half of its
nominal value ("equal jitter"), so a retry is never sooner than half the schedule promises and
the log lines that announce "retrying in N s" stay truthful within a factor of two.
"""

import random
from dataclasses import dataclass, field

DEFAULT_SPREAD = 0.5  # the share of a delay that jitter may take away


def jittered(delay: float, *, spread: float = DEFAULT_SPREAD, rng: random.Random | None = None) -> float:
    """`delay` less a random share of at most `spread` of it: a value in [delay * (1 - spread), delay]."""
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread must be between 0 and 1, not {spread!r}")
    draw = (rng or random).random()
    return delay * (1.0 - spread * draw)


@dataclass
class Backoff:
    """1 s, 2 s, 4 s ... up to `cap`, each jittered by `spread`; `reset()` after a success."""

    first: float = 1.0
    cap: float = 30.0
    spread: float = DEFAULT_SPREAD
    rng: random.Random | None = None
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._next = min(self.first, self.cap)

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return jittered(delay, spread=self.spread, rng=self.rng)
