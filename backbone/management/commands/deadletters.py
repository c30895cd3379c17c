from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from backbone.consumer import load_handler_modules
from backbone.deadletters import DeadLetterError, DeadLetterPublishError, Release, discard, replay, summary
from backbone.models import DeadLetter, DeadLetterStatus
from backbone.records import decode_headers

STATUSES = [*DeadLetterStatus.values, "all"]


class Command(BaseCommand):
    help = (
        "Inspect and resolve dead letters: list, show <id>, replay <id> (apply it with the current "
        "code, then the records parked behind it), discard <id> (drop it, apply the parked records)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="list|show|replay|discard")
        listing = actions.add_parser("list", help="dead letters, newest first")
        listing.add_argument("--status", choices=STATUSES, default=DeadLetterStatus.PENDING)
        listing.add_argument("--context", help="only this context's dead letters")
        listing.add_argument("--limit", type=int, default=50)
        for name, what in (
            ("show", "everything about one dead letter"),
            ("replay", "apply it, then its parked records"),
            ("discard", "drop it, apply its parked records"),
        ):
            action = actions.add_parser(name, help=what)
            action.add_argument("id", type=int)
            action.add_argument("--handlers", action="append", default=[], metavar="MODULE")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list(options["status"], options["context"], options["limit"])
            return
        load_handler_modules(options["handlers"])
        try:
            if action == "show":
                self._show(options["id"])
            elif action == "replay":
                release = replay(dead_letter_id=options["id"])
                self._report(f"dead letter #{release.dead_letter_id} replayed", release.applied - 1, release)
            else:
                release = discard(dead_letter_id=options["id"])
                self._report(f"dead letter #{release.dead_letter_id} discarded", release.applied, release)
        except (DeadLetterError, DeadLetterPublishError) as error:
            raise CommandError(str(error)) from None

    def _list(self, status: str, context: str | None, limit: int) -> None:
        letters = DeadLetter.objects.annotate(parked_count=Count("parked")).order_by("-id")
        if status != "all":
            letters = letters.filter(status=status)
        if context:
            letters = letters.filter(context=context)
        rows = list(letters[:limit])
        if not rows:
            self.stdout.write(f"no {'' if status == 'all' else status + ' '}dead letters")
            return
        self.stdout.write(
            f"{'id':>6}  {'status':9}  {'context':12}  {'event type':28}  {'record':24}  "
            f"{'key':14}  tries  parked  error"
        )
        for letter in rows:
            record = f"{letter.topic}[{letter.partition}]@{letter.offset}"
            event_type = letter.event_type or "(invalid)"
            self.stdout.write(
                f"{letter.pk:>6}  {letter.status:9}  {letter.context[:12]:12}  "
                f"{event_type[:28]:28}  {record[:24]:24}  {(letter.key or '-')[:14]:14}  "
                f"{letter.attempts:>5}  {letter.parked_count:>6}  {summary(letter.error)[:80]}"
            )

    def _show(self, dead_letter_id: int) -> None:
        letter = DeadLetter.objects.filter(pk=dead_letter_id).first()
        if letter is None:
            raise DeadLetterError(f"no dead letter #{dead_letter_id}")
        fields = [
            ("status", letter.status),
            ("reason", letter.get_reason_display()),
            ("context", f"{letter.context} (group {letter.consumer_group})"),
            ("record", f"{letter.topic}[{letter.partition}]@{letter.offset}, key {letter.key!r}"),
            ("event", f"{letter.event_type or '-'} {letter.event_id or ''}".rstrip()),
            ("correlation", letter.correlation_id or "-"),
            ("attempts", str(letter.attempts)),
            ("created", letter.created_at.isoformat()),
            ("resolved", letter.resolved_at.isoformat() if letter.resolved_at else "-"),
            ("parked", str(letter.parked.count())),
        ]
        for name, value in fields:
            self.stdout.write(f"{name:12} {value}")
        self.stdout.write("headers")
        for name, content in decode_headers(letter.headers):
            self.stdout.write(f"  {name}: {content.decode('utf-8', errors='replace')}")
        raw = bytes(letter.value) if letter.value is not None else b""
        self.stdout.write(f"value        {raw.decode('utf-8', errors='replace') or '(none)'}")
        self.stdout.write(f"error\n{letter.error}")

    def _report(self, what: str, parked_applied: int, release: Release) -> None:
        line = f"{what}; {parked_applied} parked record(s) applied"
        if release.new_dead_letter_id is not None:
            line += (
                f"; a parked record failed and is now dead letter #{release.new_dead_letter_id} "
                f"({release.still_parked} record(s) wait behind it)"
            )
        self.stdout.write(line)
