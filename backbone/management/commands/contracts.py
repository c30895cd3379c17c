"""`manage.py contracts [list|snapshot|check|asyncapi]`: the event contracts, their committed
snapshots, and the AsyncAPI document made from them.

The rules the check applies are in backbone/compatibility.py and docs/backbone.md ("Changing a
contract"). Adding a subcommand takes one `add_parser` call and one `handle_<name>` method.
"""

import argparse
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone import compatibility
from backbone.asyncapi import rendered as rendered_asyncapi
from backbone.contracts import registry

DEFAULT_ASYNCAPI = "docs/asyncapi.yaml"


def project_root() -> Path:
    """Where relative paths start: the project's BASE_DIR (startproject writes one), else the
    current directory, for a project whose settings do not name it."""
    return Path(getattr(settings, "BASE_DIR", None) or Path.cwd())


def default_snapshots() -> Path:
    return project_root() / "contracts"


class Command(BaseCommand):
    help = (
        "The registered event contracts. `list` (the default) lists them; `snapshot` writes the "
        "committed JSON Schema of each one's current version; `check` (run by `make lint`) fails "
        "on a change that breaks old readers or old records without a new version and an upcaster, "
        "and on a stale snapshot; `asyncapi` writes the AsyncAPI 3.0 document (docs/asyncapi.yaml)."
    )
    # Reading contracts needs no database, Kafka or Redis: `make lint` runs this without services.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--schemas", metavar="DIR", help="(list) also write <type>.v<version>.schema.json files to DIR"
        )
        commands = parser.add_subparsers(dest="subcommand", metavar="{list,snapshot,check,asyncapi}")
        commands.add_parser("list", help="list every contract with its version, topic and key (the default)")
        snapshot = commands.add_parser(
            "snapshot",
            help="write the current version's schema of every contract; refuses a breaking change",
            description="Write <type>.v<version>.schema.json for each contract's current version. "
            "Older versions' snapshots are kept: they describe records still retained.",
        )
        _directory_option(snapshot)
        snapshot.add_argument(
            "--force",
            action="store_true",
            help="write even a breaking change (only for a version no shared environment has seen)",
        )
        check = commands.add_parser(
            "check",
            help="compare the contracts with their snapshots; exit 1 on any problem",
            description="One line per problem: type, version, field, and what to do.",
        )
        _directory_option(check)
        asyncapi = commands.add_parser(
            "asyncapi",
            help="write the AsyncAPI 3.0 document of the events; --check (`make lint`) fails when stale",
            description="Channels = the topics with their keys, messages = the event types with their "
            "payload schemas and the CloudEvents headers, operations = each context's send and receive.",
        )
        asyncapi.add_argument(
            "--output", default=DEFAULT_ASYNCAPI, help=f"where to write it (default {DEFAULT_ASYNCAPI})"
        )
        asyncapi.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 when the file differs from the contracts",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options.get("subcommand") or "list"
        getattr(self, f"handle_{subcommand}")(options)

    def handle_asyncapi(self, options: dict[str, Any]) -> None:
        path = _asyncapi_path(options["output"])
        text = rendered_asyncapi()
        if options["check"]:
            if not path.exists() or path.read_text() != text:
                raise CommandError(f"{path} is stale: run `manage.py contracts asyncapi` and commit it")
            self.stdout.write(f"{path} is current")
            return
        path.write_text(text)
        self.stdout.write(f"wrote {path}")

    def handle_list(self, options: dict[str, Any]) -> None:
        target = Path(options["schemas"]) if options["schemas"] else None
        if target:
            target.mkdir(parents=True, exist_ok=True)
        for contract in registry.all():
            line = (
                f"{contract.type_name:32} v{contract.contract_version}"
                f"  topic {contract.topic:20} key {contract.key_field}"
            )
            if target:
                path = target / compatibility.snapshot_name(contract.type_name, contract.contract_version)
                path.write_text(compatibility.render(compatibility.schema_of(contract)))
                line += f"  -> {path}"
            self.stdout.write(line)

    def handle_snapshot(self, options: dict[str, Any]) -> None:
        directory = Path(options["dir"])
        directory.mkdir(parents=True, exist_ok=True)
        problems = self._problems(directory)
        breaking = {(problem.type_name, problem.version) for problem in problems if problem.breaking}
        if breaking and not options["force"]:
            self._report(problems)
            raise CommandError(f"{len(breaking)} contract(s) with breaking changes: nothing written")
        for contract in registry.all():
            path = directory / compatibility.snapshot_name(contract.type_name, contract.contract_version)
            text = compatibility.render(compatibility.schema_of(contract))
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                self.stdout.write(f"wrote {path}")

    def handle_check(self, options: dict[str, Any]) -> None:
        problems = self._problems(Path(options["dir"]))
        if problems:
            self._report(problems)
            raise CommandError(f"{len(problems)} contract problem(s); docs/backbone.md, Changing a contract")
        self.stdout.write(f"{len(registry.all())} contracts match their snapshots")

    def _problems(self, directory: Path) -> list[compatibility.Problem]:
        return compatibility.check(registry.all(), registry, compatibility.read_snapshots(directory))

    def _report(self, problems: list[compatibility.Problem]) -> None:
        for problem in problems:
            self.stderr.write(str(problem))


def _directory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=str(default_snapshots()),
        help="the snapshot directory (default: contracts/ under the project's BASE_DIR)",
    )


def _asyncapi_path(output: str) -> Path:
    path = Path(output)
    return path if path.is_absolute() else project_root() / path
