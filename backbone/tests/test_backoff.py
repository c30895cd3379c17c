"""Every retry loop backs off with jitter, so processes that lost one service do not return in lockstep."""

import random

import pytest

from backbone.backoff import Backoff, jittered
from backbone.outages import DatabaseOutage


def test_a_delay_loses_at_most_its_spread() -> None:
    rng = random.Random(7)
    delays = [jittered(10.0, rng=rng) for _ in range(200)]
    assert min(delays) >= 5.0
    assert max(delays) <= 10.0
    assert max(delays) - min(delays) > 3.0, "the draws should cover the range"


def test_no_spread_is_the_plain_schedule() -> None:
    backoff = Backoff(first=1, cap=8, spread=0.0)
    assert [backoff.next_delay() for _ in range(5)] == [1, 2, 4, 8, 8]


def test_the_schedule_doubles_to_its_cap_and_resets() -> None:
    backoff = Backoff(first=1, cap=8)
    nominal = [1, 2, 4, 8, 8]
    delays = [backoff.next_delay() for _ in nominal]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, nominal, strict=True)), delays
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1


def test_two_relays_that_lost_postgresql_together_retry_apart() -> None:
    first, second = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [first.next_delay() for _ in range(4)] != [second.next_delay() for _ in range(4)]


def test_four_consumers_in_one_outage_wait_different_times() -> None:
    pauses: list[float] = []
    for name in ("orders", "stock", "payments", "shipments"):
        outage = DatabaseOutage(name, pause=pauses.append)
        outage.wait(RuntimeError("server closed the connection"), records=1)
    assert all(0.5 <= pause <= 1.0 for pause in pauses), pauses
    assert len(set(pauses)) == len(pauses), "the consumers would reconnect in lockstep"


def test_a_spread_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="spread"):
        jittered(1.0, spread=1.5)
