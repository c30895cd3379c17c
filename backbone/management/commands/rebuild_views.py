from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone.consumer import DeadLetterLimitReached, RunnerOptions, create_runner, load_handler_modules
from backbone.preflight import ServiceUnavailable, check_kafka, check_postgres
from backbone.rebuild import RebuildError, rebuild, rebuildable_views
from backbone.subscriptions import subscriptions


class Command(BaseCommand):
    help = (
        "Rebuild a context's read models (REBUILDABLE_VIEWS in its handlers.py) from the topics: "
        "empty them, forget the group's inbox, rewind its offsets; `consume <context>` (or --replay) "
        "then applies every event again. Stop the context's consumers first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("context")
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")
        parser.add_argument(
            "--replay",
            action="store_true",
            help="replay here until caught up instead of leaving it to consume",
        )
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--handlers", action="append", default=[], metavar="MODULE")

    def handle(self, *args: Any, **options: Any) -> None:
        context = options["context"]
        load_handler_modules(options["handlers"])
        if not subscriptions.for_context(context):
            raise CommandError(f"context {context!r} has no handlers")
        try:
            check_postgres()
            check_kafka()
        except ServiceUnavailable as error:
            raise CommandError(str(error)) from None
        views = ", ".join(view._meta.label for view in rebuildable_views(context)) or "nothing"
        if options["interactive"]:
            answer = input(
                f"This empties {views} and replays {context}'s topics from the start. "
                f"The `consume {context}` processes must be stopped. Type 'yes' to go on: "
            )
            if answer.strip().lower() != "yes":
                raise CommandError("rebuild cancelled")
        try:
            _, forgotten = rebuild(context)
        except RebuildError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"emptied {views}; forgot {forgotten} inbox row(s); offsets rewound")
        if not options["replay"]:
            self.stdout.write(f"start `manage.py consume {context}` to replay the events into the views")
            return
        runner = create_runner(
            context=context, options=RunnerOptions.from_settings(batch_size=options["batch_size"], once=True)
        )
        try:
            stats = runner.run()
        except DeadLetterLimitReached as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"replayed {stats.records} record(s): {stats}")
