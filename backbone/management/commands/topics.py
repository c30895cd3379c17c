from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone.conf import backbone_settings
from backbone.preflight import ServiceUnavailable, check_kafka
from backbone.provisioning import ensure_topics


class Command(BaseCommand):
    help = "Create the fixed topics (stock.levels compacted) and their <topic>.dlq, idempotently."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partitions", type=int, default=backbone_settings.KAFKA_TOPIC_PARTITIONS)
        parser.add_argument(
            "--replication-factor", type=int, default=backbone_settings.KAFKA_REPLICATION_FACTOR
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            check_kafka()
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        outcome = ensure_topics(options["partitions"], options["replication_factor"])
        for name, state in sorted(outcome.items()):
            self.stdout.write(f"{state:8} {name}")
