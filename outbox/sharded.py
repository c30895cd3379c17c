"""A relay process with N shards: register the layout, then one relay thread per shard.

Each thread stands by for its shard's lock and leads the shard when it wins it (see
`shards.py`), with connections and a producer of its own, as a single relay does; a process
leads at most its share of the shards, so two processes with two shards lead one each, and
one takes the other's over when it dies. Threads share the GIL, so the CPU of several shards
adds up only across processes (or machines).
"""

import logging
import threading
from collections.abc import Callable

import psycopg

from backbone.heartbeat import Heartbeat

from .backoff import Backoff, StopFlag
from .leader import AnotherLeader
from .relay import Relay
from .shards import OtherLayout, RelayLayout, Shard

log = logging.getLogger("outbox.relay")

RelayFactory = Callable[..., Relay]  # Relay(...) with everything but shard, layout, heartbeat


def run_sharded(
    make_relay: RelayFactory,
    *,
    layout: RelayLayout,
    stop: StopFlag,
    heartbeat: Heartbeat | None,
    once: bool,
    max_backoff: float,
    standby_retry: float,
) -> int:
    """Relay every shard this process wins until stopped; the rows it published."""
    if not _join(layout, stop, max_backoff=max_backoff, standby_retry=standby_retry):
        return 0
    try:
        relays = [
            # Shard 0's thread keeps the process's heartbeat (the status page's "relay").
            make_relay(
                shard=Shard(number, layout.count), layout=layout, heartbeat=heartbeat if number == 0 else None
            )
            for number in range(layout.count)
        ]
        errors = _run_threads(relays, stop, once=once)
    finally:
        layout.leave()
    if errors:
        raise errors[0]
    return sum(relay.published for relay in relays)


def _join(layout: RelayLayout, stop: StopFlag, *, max_backoff: float, standby_retry: float) -> bool:
    """Register the layout, standing by while another one runs (False if stopped first)."""
    announced = False
    database_backoff = Backoff(cap=max_backoff)
    while not stop.is_set():
        try:
            layout.join()
            return True
        except OtherLayout as error:
            if not announced:
                log.warning(
                    "%s: standing by. To change the number of shards, stop every relay, then "
                    "start them all with the new number",
                    error,
                )
                announced = True
            stop.wait(standby_retry)
        except psycopg.OperationalError as error:
            delay = database_backoff.next_delay()
            log.warning(
                "PostgreSQL unavailable (%s); retrying in %.1fs", str(error).strip().splitlines()[0], delay
            )
            stop.wait(delay)
    return False


def _run_threads(relays: list[Relay], stop: StopFlag, *, once: bool) -> list[BaseException]:
    """Run each shard's relay in a thread; an unexpected error stops them all, and the process
    exits with it (its supervisor starts it again)."""
    errors: list[BaseException] = []

    def run(relay: Relay) -> None:
        try:
            relay.run(once=once)
        except AnotherLeader as error:
            errors.append(error)
        except BaseException as error:
            # Re-raised by the main thread, which the command reports (or Django prints).
            errors.append(error)
            stop.set()

    threads = [
        threading.Thread(target=run, args=(relay,), name=f"relay-shard-{n}") for n, relay in enumerate(relays)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
