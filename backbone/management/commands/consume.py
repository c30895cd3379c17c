import argparse
import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError

from backbone.conf import backbone_settings
from backbone.consumer import (
    ConsumerRunner,
    DeadLetterLimitReached,
    RunnerOptions,
    create_runner,
    load_handler_modules,
    parse_schedule,
)
from backbone.metrics import DeadLetterCollector, serve
from backbone.preflight import ServiceUnavailable, check_kafka, check_postgres, check_topics
from backbone.subscriptions import subscriptions


def _schedule(text: str) -> tuple[float, ...]:
    try:
        return parse_schedule(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class Command(BaseCommand):
    help = (
        "Run a context's event handlers over the topics it subscribes to, effectively once "
        "(one consumer group per context). SIGTERM/SIGINT finish the batch, commit and exit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("context", help="the context whose handlers run, e.g. orders")
        parser.add_argument("--batch-size", type=int, help="records per transaction (CONSUMER_BATCH_SIZE)")
        parser.add_argument(
            "--max-attempts", type=int, help="tries of a failing handler before it is dead-lettered"
        )
        parser.add_argument("--retry-delay", type=float, help="first backoff in seconds; doubles per attempt")
        parser.add_argument(
            "--retry-schedule",
            type=_schedule,
            metavar="SECONDS,...",
            help="delays before each retry, e.g. 1,5,30,120,600; the record waits in the table, not "
            "in the consumer (CONSUMER_RETRY_SCHEDULE[_<CONTEXT>])",
        )
        parser.add_argument("--dead-letter-limit", type=int, help="stop past this many dead letters")
        parser.add_argument("--status-interval", type=float, help="seconds between status lines")
        parser.add_argument(
            "--idle-exit", type=float, metavar="SECONDS", help="exit after SECONDS without records"
        )
        parser.add_argument(
            "--once", action="store_true", help="exit once the assigned partitions are caught up"
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            metavar="PORT",
            help="serve Prometheus metrics on PORT (METRICS_ADDRESS); off by default",
        )
        parser.add_argument(
            "--handlers",
            action="append",
            default=[],
            metavar="MODULE",
            help="import this handler module too (repeatable; also BACKBONE_EXTRA_HANDLER_MODULES)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        context = options["context"]
        load_handler_modules(options["handlers"])
        if not subscriptions.for_context(context):
            known = ", ".join(subscriptions.contexts()) or "none"
            raise CommandError(f"context {context!r} has no handlers (contexts with handlers: {known})")
        try:
            check_postgres()
            check_kafka()
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        runner = create_runner(
            context=context,
            options=RunnerOptions.from_settings(
                context,
                retry_schedule=options["retry_schedule"],
                batch_size=options["batch_size"],
                max_attempts=options["max_attempts"],
                retry_delay=options["retry_delay"],
                dead_letter_limit=options["dead_letter_limit"],
                status_interval=options["status_interval"],
                idle_exit=options["idle_exit"],
                once=options["once"],
            ),
        )
        try:
            check_topics(runner.topics())
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        if options["metrics_port"]:
            _serve_metrics(context, options["metrics_port"])
        # What start-up created (Django, contracts, handlers) lives as long as the process:
        # frozen, the cyclic garbage collector never walks it again.
        gc.freeze()
        try:
            with _stop_on_signals(runner):
                runner.run()
        except DeadLetterLimitReached as error:
            raise CommandError(str(error)) from None
        except (OperationalError, InterfaceError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(
                f"consumer {context} stopped: PostgreSQL connection failed ({first_line})"
            ) from None


def _serve_metrics(context: str, port: int) -> None:
    """The runner's counters, and its context's pending dead letters and parked records."""
    try:
        serve(port, collectors=[DeadLetterCollector(context)])
    except OSError as error:
        raise CommandError(
            f"cannot serve metrics on {backbone_settings.METRICS_ADDRESS}:{port}: {error}"
        ) from None


@contextmanager
def _stop_on_signals(runner: ConsumerRunner) -> Iterator[None]:
    previous = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    for number in previous:
        signal.signal(number, lambda *_: runner.stop())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
