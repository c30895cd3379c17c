import getpass
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from backbone.consumer import load_handler_modules
from backbone.deadletters import (
    DeadLetterError,
    DeadLetterPublishError,
    Release,
    discard,
    edit_payload,
    parse_assignment,
    replay,
    summary,
)
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus
from backbone.records import decode_headers

STATUSES = [*DeadLetterStatus.values, "all"]
DEFAULT_RATE = 10.0  # dead letters per second: a bulk replay must not flood the handlers' database


def _moment(text: str) -> datetime:
    """An ISO date (midnight, local time zone) or date-time; naive ones are in TIME_ZONE."""
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise ValueError(text)
        moment = datetime(day.year, day.month, day.day)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = (
        "Inspect and resolve dead letters: list, show <id>, replay <id> (apply it with the current "
        "code, then the records parked behind it), discard <id> (drop it, apply the parked records); "
        "replay/discard without ids take the pending dead letters a filter selects, at --rate per "
        "second; edit <id> changes a payload (validated by its contract) before it is replayed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="list|show|replay|discard|edit")
        listing = actions.add_parser("list", help="dead letters, newest first")
        listing.add_argument("--status", choices=STATUSES, default=DeadLetterStatus.PENDING)
        listing.add_argument("--context", help="only this context's dead letters")
        listing.add_argument("--limit", type=int, default=50)
        show = actions.add_parser("show", help="everything about one dead letter")
        show.add_argument("id", type=int)
        show.add_argument("--handlers", action="append", default=[], metavar="MODULE")
        for name, what in (
            ("replay", "apply them, then their parked records"),
            ("discard", "drop them, apply their parked records"),
        ):
            action = actions.add_parser(name, help=what)
            action.add_argument("ids", type=int, nargs="*", metavar="id")
            self._add_filters(action)
            action.add_argument("--handlers", action="append", default=[], metavar="MODULE")
        edit = actions.add_parser("edit", help="change a pending dead letter's payload before replaying it")
        edit.add_argument("id", type=int)
        source = edit.add_mutually_exclusive_group(required=True)
        source.add_argument("--payload-file", type=Path, help="the whole new payload, a JSON object")
        source.add_argument(
            "--set", action="append", dest="assignments", metavar="FIELD=VALUE", help="a.b=JSON or text"
        )
        edit.add_argument("--by", help="who edits (default: the operating-system user)")
        edit.add_argument("--handlers", action="append", default=[], metavar="MODULE")

    def _add_filters(self, action: CommandParser) -> None:
        action.add_argument("--context", help="only this context's dead letters")
        action.add_argument("--type", dest="event_type", help="only this event type")
        action.add_argument("--reason", choices=DeadLetterReason.values)
        action.add_argument("--since", type=_moment, help="created at or after (ISO date or date-time)")
        action.add_argument("--until", type=_moment, help="created before (ISO date or date-time)")
        action.add_argument(
            "--rate", type=float, default=DEFAULT_RATE, help=f"per second (default {DEFAULT_RATE:g})"
        )
        action.add_argument("--dry-run", action="store_true", help="list what would be done, do nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list(options["status"], options["context"], options["limit"])
            return
        load_handler_modules(options["handlers"])
        try:
            if action == "show":
                self._show(options["id"])
            elif action == "edit":
                self._edit(options)
            elif len(options["ids"]) == 1 and not self._filtered(options):
                self._release_one(action, options["ids"][0])
            else:
                self._release_many(action, options)
        except (DeadLetterError, DeadLetterPublishError) as error:
            raise CommandError(str(error)) from None

    def _release_one(self, action: str, dead_letter_id: int) -> None:
        if action == "replay":
            release = replay(dead_letter_id=dead_letter_id)
            self._report(f"dead letter #{release.dead_letter_id} replayed", release.applied - 1, release)
        else:
            release = discard(dead_letter_id=dead_letter_id)
            self._report(f"dead letter #{release.dead_letter_id} discarded", release.applied, release)

    # --- Many at once -----------------------------------------------------------------------

    @staticmethod
    def _filtered(options: dict[str, Any]) -> bool:
        return any(options[name] for name in ("context", "event_type", "reason", "since", "until", "dry_run"))

    def _selection(self, options: dict[str, Any]) -> QuerySet[DeadLetter]:
        if not options["ids"] and not self._filtered(options):
            raise CommandError(
                "give dead-letter ids, or a filter (--context, --type, --reason, --since, --until)"
            )
        letters = DeadLetter.objects.filter(status=DeadLetterStatus.PENDING)
        if options["ids"]:
            letters = letters.filter(pk__in=options["ids"])
        if options["context"]:
            letters = letters.filter(context=options["context"])
        if options["event_type"]:
            letters = letters.filter(event_type=options["event_type"])
        if options["reason"]:
            letters = letters.filter(reason=options["reason"])
        if options["since"]:
            letters = letters.filter(created_at__gte=options["since"])
        if options["until"]:
            letters = letters.filter(created_at__lt=options["until"])
        # Oldest first: for one key, the earlier dead letter must be released first.
        return letters.order_by("id")

    def _release_many(self, action: str, options: dict[str, Any]) -> None:
        rate = options["rate"]
        if rate <= 0:
            raise CommandError("--rate must be above 0")
        letters = list(self._selection(options))
        done = "replayed" if action == "replay" else "discarded"
        if options["dry_run"]:
            for letter in letters:
                self.stdout.write(f"would be {done}: {self._line(letter)}")
            self.stdout.write(f"dry run: {len(letters)} pending dead letter(s) would be {done}")
            return
        release: Callable[..., Release] = replay if action == "replay" else discard
        started = time.monotonic()
        failed = 0
        for index, letter in enumerate(letters):
            # A steady pace, not bursts: the n-th release starts no earlier than n / rate seconds in.
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            progress = f"[{index + 1}/{len(letters)}] #{letter.pk}"
            try:
                outcome = release(dead_letter_id=letter.pk)
            except (DeadLetterError, DeadLetterPublishError) as error:
                failed += 1
                self.stderr.write(f"{progress} not {done}: {summary(str(error))}")
                continue
            note = f"{progress} {done}"
            if outcome.new_dead_letter_id is not None:
                note += f"; a parked record failed and is now dead letter #{outcome.new_dead_letter_id}"
            self.stdout.write(note)
        seconds = time.monotonic() - started
        self.stdout.write(
            f"{done} {len(letters) - failed} of {len(letters)} dead letter(s) "
            f"in {seconds:.1f} s; {failed} failed"
        )
        if failed:
            raise CommandError(f"{failed} of {len(letters)} dead letter(s) could not be {done}")

    @staticmethod
    def _line(letter: DeadLetter) -> str:
        return (
            f"#{letter.pk} {letter.context} {letter.event_type or '(invalid)'} "
            f"{letter.topic}[{letter.partition}]@{letter.offset} key {letter.key!r} "
            f"{letter.created_at.isoformat()}: {summary(letter.error)[:80]}"
        )

    # --- Editing ----------------------------------------------------------------------------

    def _edit(self, options: dict[str, Any]) -> None:
        letter = DeadLetter.objects.filter(pk=options["id"]).first()
        if letter is None:
            raise DeadLetterError(f"no dead letter #{options['id']}")
        if options["payload_file"] is not None:
            try:
                payload = json.loads(options["payload_file"].read_text())
            except (OSError, ValueError) as error:
                raise DeadLetterError(f"--payload-file: {error}") from None
            if not isinstance(payload, dict):
                raise DeadLetterError("--payload-file: the payload must be a JSON object")
        else:
            payload = None
        assignments = [parse_assignment(text) for text in options["assignments"] or []]
        edited_by = options["by"] or getpass.getuser()
        edit = edit_payload(
            dead_letter_id=letter.pk, edited_by=edited_by, payload=payload, assignments=assignments
        )
        changed = ", ".join(
            f"{name}: {before!r} -> {after!r}" for name, (before, after) in edit.changes.items()
        )
        self.stdout.write(
            f"dead letter #{letter.pk} edited by {edited_by} ({changed or 'no change'}); "
            f"replay it to apply the new payload"
        )

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
        if letter.original_value is not None:
            original = bytes(letter.original_value).decode("utf-8", errors="replace")
            self.stdout.write(f"original     {original or '(none)'}")
        for edit in letter.edits.order_by("id"):
            self.stdout.write(
                f"edited       {edit.edited_at.isoformat()} by {edit.edited_by}: {edit.changes}"
            )
        self.stdout.write(f"error\n{letter.error}")

    def _report(self, what: str, parked_applied: int, release: Release) -> None:
        line = f"{what}; {parked_applied} parked record(s) applied"
        if release.new_dead_letter_id is not None:
            line += (
                f"; a parked record failed and is now dead letter #{release.new_dead_letter_id} "
                f"({release.still_parked} record(s) wait behind it)"
            )
        self.stdout.write(line)
