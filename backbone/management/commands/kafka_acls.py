from typing import Any

from confluent_kafka import KafkaException
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone.acls import RELAY_PRINCIPAL, apply, planned_grants
from backbone.consumer import load_handler_modules
from backbone.preflight import ServiceUnavailable, check_kafka


class Command(BaseCommand):
    help = (
        "Print the Kafka ACLs that lock each topic to its writer, as kafka-acls.sh commands; "
        "--apply creates them (run as a Kafka administrator). See docs/security.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--relay-principal", default=RELAY_PRINCIPAL, help="SASL user of the relay")
        parser.add_argument(
            "--principal-prefix", default="", help="consumer users are <prefix><context> (default: none)"
        )
        parser.add_argument("--apply", action="store_true", help="create the ACLs with the Kafka AdminClient")

    def handle(self, *args: Any, **options: Any) -> None:
        load_handler_modules()
        grants = planned_grants(
            relay=options["relay_principal"], principal_prefix=options["principal_prefix"]
        )
        if not options["apply"]:
            for grant in grants:
                self.stdout.write(grant.as_command())
            return
        try:
            check_kafka()
            created = apply(grants)
        except (ServiceUnavailable, KafkaException) as error:
            raise CommandError(f"could not create the ACLs: {error}") from None
        self.stdout.write(f"{created} ACLs in place")
