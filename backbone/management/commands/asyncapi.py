from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone.asyncapi import rendered

DEFAULT_OUTPUT = "docs/asyncapi.yaml"


class Command(BaseCommand):
    help = "Write the AsyncAPI 3.0 document of the events (docs/asyncapi.yaml), or --check it is current."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", default=DEFAULT_OUTPUT, help=f"where to write it (default {DEFAULT_OUTPUT})"
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; fail when the file differs from the contracts",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["output"])
        if not path.is_absolute():
            path = Path(settings.BASE_DIR) / path
        text = rendered()
        if options["check"]:
            current = path.read_text() if path.exists() else None
            if current != text:
                raise CommandError(f"{path} is stale: run `manage.py asyncapi` and commit it")
            self.stdout.write(f"{path} is current")
            return
        path.write_text(text)
        self.stdout.write(f"wrote {path}")
