"""`manage.py status`: the relay and every consumer group on one screen (docs/operations-console.md)."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from backbone.status import GroupStatus, Member
from backbone.subscriptions import subscriptions
from outbox.status import RELAY, Overview, RelayStatus, age_text, as_json, collect


class Command(BaseCommand):
    help = (
        "Show the relay (leader, standbys, backlog, rate) and every consumer group (members, "
        "offsets, lag, dead letters). Answers while Kafka or a process is down, and says so."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the facts as JSON")
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit 1 with one line per problem when a STATUS_* threshold is passed (a healthcheck)",
        )
        parser.add_argument("--only", metavar="NAME", help="only 'relay' or one context, e.g. orders")

    def handle(self, *args: Any, **options: Any) -> None:
        only = options["only"]
        if only is not None and only != RELAY and only not in subscriptions.contexts():
            known = ", ".join([RELAY, *subscriptions.contexts()])
            raise CommandError(f"--only {only!r}: not a process this shop runs (one of: {known})")
        overview = collect(only=only)
        if options["json"]:
            self.stdout.write(json.dumps(as_json(overview), indent=2, default=str))
        elif options["check"]:
            for problem in overview.problems:
                self.stdout.write(problem)
            if not overview.problems:
                self.stdout.write(f"ok: {only or 'relay and every consumer group'}")
        else:
            self.stdout.write("\n".join(render(overview, only=only)))
        if options["check"] and overview.problems:
            raise SystemExit(1)


def render(overview: Overview, *, only: str | None = None) -> list[str]:
    lines = [f"backbone status at {overview.checked_at:%Y-%m-%d %H:%M:%S %Z} ({overview.seconds:.2f} s)"]
    lines += [f"  !! {error}" for error in (overview.database_error, overview.kafka_error) if error]
    if only in (None, RELAY):
        lines += _relay_lines(overview.relay)
    for group in overview.groups:
        lines += _group_lines(group)
    lines.append("problems: " + ("none" if not overview.problems else str(len(overview.problems))))
    lines += [f"  - {problem}" for problem in overview.problems]
    return lines


def _relay_lines(relay: RelayStatus) -> list[str]:
    lines = ["", "relay"]
    if relay.leader is not None:
        since = f"{relay.leader.since:%H:%M:%S}" if relay.leader.since else "?"
        kafka = f"; {relay.leader.facts['kafka']}" if relay.leader.facts.get("kafka") else ""
        lines.append(f"  leader   {_where(relay.leader)} since {since}{kafka}")
    else:
        lines.append(f"  leader   none alive (lock held by: {relay.lock_holder or 'nobody'})")
    lines += [f"  standby  {_where(member)}" for member in relay.standbys]
    lines += [
        f"  dead     {_where(member)} (last heartbeat {member.beat_at:%H:%M:%S})" for member in relay.dead
    ]
    waiting = "?" if relay.rows_waiting is None else relay.rows_waiting
    lines.append(
        f"  rows waiting {waiting}, oldest {age_text(relay.oldest_age)}, "
        f"published {relay.rate:.1f}/s over the last minute"
    )
    return lines


def _group_lines(group: GroupStatus) -> list[str]:
    lag = "?" if group.lag is None else group.lag
    lines = [
        "",
        f"consumer {group.context} (group {group.group}): lag {lag}, {group.rate:.1f} records/s, "
        f"last handled {group.last_handled_at or '-'}, dead letters pending "
        f"{_count(group.dead_letters_pending)}, parked {_count(group.parked)}",
    ]
    if not group.members:
        lines.append("  members  none alive")
    for member in group.members:
        lines.append(f"  member   {_where(member)}: {', '.join(member.partitions) or 'no partitions'}")
    lines += [f"  dead     {_where(m)} (last heartbeat {m.beat_at:%H:%M:%S})" for m in group.dead_members]
    for part in group.partitions:
        committed = "-" if part.committed is None else part.committed
        high = "?" if part.high_watermark is None else part.high_watermark
        part_lag = "?" if part.lag is None else part.lag
        where = f"{part.topic}/{part.partition}"
        lines.append(f"  {where:<24} committed {committed:>8}  end {high:>8}  lag {part_lag}")
    return lines


def _where(member: Member) -> str:
    return f"{member.host} pid {member.pid}"


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)
