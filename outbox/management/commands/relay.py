"""`manage.py relay`: wires the real PostgreSQL, Kafka producer and clock into the relay."""

import argparse
import logging
import os
import signal
from types import FrameType
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Producer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from backbone.conf import backbone_settings
from backbone.heartbeat import Heartbeat
from backbone.metrics import serve
from backbone.preflight import ServiceUnavailable, check_postgres
from outbox.backoff import StopFlag
from outbox.leader import AnotherLeader
from outbox.metrics import database_collectors
from outbox.publisher import relay_producer_config
from outbox.relay import Relay, RelayOptions, database_connector
from outbox.sharded import run_sharded
from outbox.shards import MAX_SHARDS, RelayLayout
from outbox.term import KAFKA_PROBE_TIMEOUT, LOCK_TOUCH_INTERVAL

log = logging.getLogger("outbox.relay")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def shard_count(text: str) -> int:
    value = positive_int(text)
    if value > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SHARDS}, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


class Command(BaseCommand):
    help = (
        "Publish committed outbox rows to Kafka in commit order. One relay per database (per "
        "shard, with --shards) is active; others stand by and take over when it dies. "
        "SIGTERM/SIGINT stop it cleanly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="publish everything pending, then exit")
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=backbone_settings.RELAY_BATCH_SIZE,
            help="rows per batch",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive_float,
            default=backbone_settings.RELAY_POLL_INTERVAL_SECONDS,
            help="seconds between safety-net polls (commits wake the relay at once via NOTIFY)",
        )
        parser.add_argument(
            "--linger",
            type=non_negative_float,
            default=backbone_settings.RELAY_LINGER_SECONDS,
            help="seconds to wait, once a commit wakes the relay, for the commits right behind it "
            "(0: publish at once)",
        )
        parser.add_argument(
            "--shards",
            type=shard_count,
            default=backbone_settings.RELAY_SHARDS,
            help="split the outbox by key hash into this many shards, each led by one relay; "
            "every relay of a database must use the same number (stop all to change it)",
        )
        parser.add_argument(
            "--metrics-port",
            type=positive_int,
            help="serve Prometheus metrics on this port (METRICS_ADDRESS); off by default",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            check_postgres()  # Kafka may be down: the relay starts anyway and waits for it
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        if options["metrics_port"]:
            serve_metrics(options["metrics_port"])
        stop = StopFlag()
        _stop_on_signals(stop)
        relay_options = _relay_options(options)
        _check_takeover(relay_options)
        _log_start(relay_options, once=options["once"], shards=options["shards"])
        connect = database_connector(settings.DATABASES["default"])

        def make_relay(**shard: Any) -> Relay:
            return Relay(
                connect=connect,
                producer_factory=_kafka_producer,
                clock=timezone.now,
                stop=stop,
                options=relay_options,
                **shard,
            )

        try:
            run_sharded(
                make_relay,
                layout=RelayLayout(connect, options["shards"]),
                stop=stop,
                heartbeat=Heartbeat(role="relay", name="relay"),
                once=options["once"],
                max_backoff=relay_options.max_backoff,
                standby_retry=relay_options.standby_retry,
            )
        except AnotherLeader as error:
            raise CommandError(f"{error}; --once published nothing") from None
        except psycopg.errors.UndefinedTable:
            database = settings.DATABASES["default"]["NAME"]
            raise CommandError(f"database {database} has no outbox table: run `manage.py migrate`") from None


def _relay_options(options: dict[str, Any]) -> RelayOptions:
    """The settings (RelayOptions' defaults), the command's options, and the takeover limit."""
    return RelayOptions(
        batch_size=options["batch_size"],
        poll_interval=options["poll_interval"],
        linger=options["linger"],
        takeover_after=backbone_settings.RELAY_TAKEOVER_AFTER_SECONDS or None,
    )


def _check_takeover(options: RelayOptions) -> None:
    """A working leader leaves its lock session idle for up to a poll interval (at most
    LOCK_TOUCH_INTERVAL), or a back-off plus two Kafka probes; a takeover limit within that
    would end healthy leaders."""
    if options.takeover_after is None:
        return
    idle = min(options.poll_interval, LOCK_TOUCH_INTERVAL) + options.max_backoff + 2 * KAFKA_PROBE_TIMEOUT
    if options.takeover_after <= idle:
        raise CommandError(
            f"RELAY_TAKEOVER_AFTER_SECONDS={options.takeover_after:g} must be more than {idle:g} "
            "(poll interval up to 5 s + RELAY_MAX_BACKOFF_SECONDS + two Kafka probes), or 0 for none"
        )


def _log_start(options: RelayOptions, *, once: bool, shards: int) -> None:
    database = settings.DATABASES["default"]
    log.info(
        "relay starting (pid %d%s%s): database %s at %s:%s, Kafka %s, namespace %r, batch %d, "
        "safety-net poll every %gs, retention %gh",
        os.getpid(),
        ", --once" if once else "",
        f", {shards} shards" if shards > 1 else "",
        database["NAME"],
        database["HOST"],
        database["PORT"],
        options.kafka_address,
        backbone_settings.KAFKA_NAMESPACE,
        options.batch_size,
        options.poll_interval,
        options.retention.total_seconds() / 3600,
    )


def serve_metrics(port: int) -> None:
    """Counters of this process, and what waits in the outbox and the dead letters."""
    try:
        serve(port, collectors=database_collectors())
    except OSError as error:
        raise CommandError(
            f"cannot serve metrics on {backbone_settings.METRICS_ADDRESS}:{port}: {error}"
        ) from None


def _kafka_producer() -> Producer:
    return Producer(relay_producer_config(error_cb=_on_kafka_error))


def _on_kafka_error(error: KafkaError) -> None:
    # Transport errors repeat while Kafka is away; the relay reports the outage itself.
    if error.fatal():
        log.error("Kafka producer fatal error: %s", error.str())
    else:
        log.debug("Kafka: %s", error.str())


def _stop_on_signals(stop: StopFlag) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("%s: finishing the current batch, then stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
