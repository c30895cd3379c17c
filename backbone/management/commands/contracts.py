import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from backbone.contracts import registry


class Command(BaseCommand):
    help = "List the registered event contracts, or write their JSON Schemas (--schemas DIR)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schemas", metavar="DIR", help="write <type>.v<version>.schema.json files here")

    def handle(self, *args: Any, **options: Any) -> None:
        target = Path(options["schemas"]) if options["schemas"] else None
        if target:
            target.mkdir(parents=True, exist_ok=True)
        for contract in registry.all():
            line = (
                f"{contract.type_name:32} v{contract.contract_version}"
                f"  topic {contract.topic:20} key {contract.key_field}"
            )
            if target:
                path = target / f"{contract.type_name}.v{contract.contract_version}.schema.json"
                schema = {"$id": contract.type_name, **contract.model_json_schema()}
                path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
                line += f"  -> {path}"
            self.stdout.write(line)
