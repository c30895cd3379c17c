"""`manage.py audit`: prove that the events of a window (or one story) took effect exactly once."""

import argparse
import time
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import KafkaException
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import ProgrammingError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backbone.conf import backbone_settings
from backbone.preflight import ServiceUnavailable, check_postgres
from outbox.audit import AuditReport, Scope, audit
from outbox.audit_kafka import KafkaReader


def moment(text: str) -> datetime:
    value = parse_datetime(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not a date and time (e.g. 2026-11-30T12:00:00Z): {text!r}")
    return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.get_default_timezone())


class Command(BaseCommand):
    help = (
        "Check that every event published in a window (or of one correlation id) is on Kafka at "
        "its recorded offset and was handled exactly once by every consumer group subscribed to "
        "its type. Prints each discrepancy with what to do; exits 1 if there is any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--correlation-id", help="audit one story instead of a time window")
        parser.add_argument("--since", type=moment, help="window start (default: --hours ago)")
        parser.add_argument("--until", type=moment, help="window end (default: now)")
        parser.add_argument("--hours", type=float, default=24.0, help="window length without --since (24)")
        parser.add_argument(
            "--context", action="append", dest="contexts", help="only these contexts' groups (repeatable)"
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=0.0,
            help="seconds to audit again while there are discrepancies (consumers still catching up)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            check_postgres()
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        scope = _scope(options)
        deadline = time.monotonic() + options["wait"]
        reader = KafkaReader()
        try:
            report = self._audit(scope, reader, options["contexts"])
            while not report.ok and time.monotonic() < deadline:
                time.sleep(1.0)
                report = self._audit(scope, reader, options["contexts"])
        finally:
            reader.close()
        self._print(report)
        if not report.ok:
            raise CommandError(f"{len(report.discrepancies)} discrepancies")

    def _audit(self, scope: Scope, reader: KafkaReader, contexts: list[str] | None) -> AuditReport:
        try:
            return audit(scope, reader, contexts=contexts)
        except ProgrammingError as error:  # a database the event log's migration has not reached
            raise CommandError(f"{_first_line(error)}: run `manage.py migrate`") from None
        except (KafkaException, TimeoutError, RuntimeError) as error:
            where = backbone_settings.KAFKA_BOOTSTRAP_SERVERS
            raise CommandError(f"Kafka at {where} could not be read ({error}); nothing was audited") from None

    def _print(self, report: AuditReport) -> None:
        self.stdout.write(
            f"audit of {report.scope.describe()}: {report.events} events, "
            f"{report.checks} group handlings checked"
        )
        if report.unverifiable:
            self.stdout.write(
                f"  {report.unverifiable} records are older than their topic's retention on Kafka: "
                "not compared with Kafka"
            )
        for number, finding in enumerate(report.discrepancies, start=1):
            self.stdout.write(f"{number}. [{finding.kind}] {finding.what}")
            self.stdout.write(f"   what to do: {finding.fix}")
        if report.ok:
            self.stdout.write("no discrepancy: every event is on Kafka and took effect exactly once")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _scope(options: dict[str, Any]) -> Scope:
    if options["correlation_id"]:
        return Scope(correlation_id=options["correlation_id"])
    until = options["until"]
    since = options["since"] or (until or timezone.now()) - timedelta(hours=options["hours"])
    return Scope(since=since, until=until)
