"""One batch, one transaction: inbox rows, handlers, parked records and dead letters.

Either all of a batch's effects commit together or none do: a failing handler, a failing batch
handler or a dead letter past the budget raises out of the transaction (see interruptions.py),
and the runner decides what to apply again. The `.dlq` copies of the batch's dead letters are
stored before the rows commit; a copy that may work later raises DeadLetterPublishError and
rolls the batch back. A lost PostgreSQL connection is not a handler's failure: it is raised
as it is, for the runner to wait out.
"""

import logging
from collections.abc import Sequence
from datetime import datetime

from django.db import transaction

from .. import inbox
from ..correlation import correlation_scope
from ..deadletters import DeadLetterPublisher, KeyGate, note_refused_copies, park, summary, write_dead_letter
from ..models import DeadLetterReason
from ..outages import connection_lost
from ..records import (
    BatchItems,
    ConsumedRecord,
    Invalid,
    Newer,
    Routed,
    Routes,
    Unrouted,
    handle,
    handle_batch,
    route,
    unrouted_type,
)
from .budget import DeadLetterBudget
from .interruptions import BatchHandlerFailed, HandlerFailed, LimitReached
from .stats import RunStats

log = logging.getLogger(__name__)


class BatchApplier:
    """Applies records of one consumer group in one transaction each; `apply()` says what it did."""

    def __init__(
        self,
        *,
        context: str,
        group: str,
        routes: Routes,
        publisher: DeadLetterPublisher,
        budget: DeadLetterBudget,
    ) -> None:
        self.context = context
        self.group = group
        self.routes = routes
        self._publisher = publisher
        self._budget = budget
        self._copies = 0  # .dlq copies sent in the current transaction, to flush before it commits

    def apply(
        self,
        records: Sequence[ConsumedRecord],
        *,
        batched: bool,
        exhausted: tuple[str, int] | None = None,
        retry_at: datetime | None = None,
    ) -> RunStats:
        """One transaction: inbox rows, handlers, parked records and dead letters of `records`.

        `batched` gathers the events of batch handlers and calls each once at the end; without
        it they are called per event, in record order. `exhausted` (error, attempts) makes the
        single record given a dead letter if it would otherwise be handled; with `retry_at` it
        waits for a scheduled retry instead (see deadletters/retry.py). Raises
        Interrupted subclasses and BatchHandlerFailed (the transaction rolled back).
        """
        stats = RunStats(records=len(records))
        if all(unrouted_type(record, self.routes) is not None for record in records):
            # A context reads whole topics, and most of their events are other contexts' business:
            # a batch of only those writes nothing, so it opens no transaction (it would cost a
            # dead-letter gate read and a commit, three times per order in Payments alone).
            stats.skipped = len(records)
            return stats
        self._copies = 0
        with transaction.atomic():
            gate = KeyGate.load(self.group)
            to_handle: list[tuple[int, ConsumedRecord, Routed]] = []
            for index, record in enumerate(records):
                routed = self._sort(index, record, gate, stats, exhausted, retry_at)
                if routed is not None:
                    to_handle.append((index, record, routed))
            new_ids = inbox.claim(
                group=self.group, items=[(record, routed) for _, record, routed in to_handle]
            )
            batches: BatchItems | None = {} if batched else None
            for index, _, routed in to_handle:
                if routed.event_id not in new_ids:  # handled before, or twice in this batch
                    stats.duplicates += 1
                    continue
                new_ids.discard(routed.event_id)
                try:
                    handle(routed, group=self.group, batches=batches)
                except Exception as error:
                    if connection_lost(error):
                        raise  # PostgreSQL is away: not the handler's failure (see outages.py)
                    raise HandlerFailed(index, error) from error
                stats.handled += 1
            for subscription, items in (batches or {}).items():
                try:
                    handle_batch(subscription, items)
                except Exception as error:
                    if connection_lost(error):
                        raise
                    raise BatchHandlerFailed(subscription, len(items), error) from error
            if self._copies:
                # The .dlq copies are stored (or refused for good, and the rows say so) before
                # the rows commit; a copy that may work later rolls the batch back, to try again.
                note_refused_copies(self._publisher.flush())
        self._budget.spend(stats.dead_lettered)
        return stats

    def _sort(
        self,
        index: int,
        record: ConsumedRecord,
        gate: KeyGate,
        stats: RunStats,
        exhausted: tuple[str, int] | None,
        retry_at: datetime | None = None,
    ) -> Routed | None:
        """Skip, park or dead-letter a record right here; return it if its handlers should run."""
        if gate.is_dead_letter(record):  # redelivered after a crash: it already waits as one
            stats.skipped += 1
            return None
        outcome = route(record, self.routes)
        if isinstance(outcome, Unrouted):
            stats.skipped += 1
            return None
        blocker = gate.blocker(record)
        if blocker is not None:
            park(group=self.group, record=record, dead_letter_id=blocker)
            stats.parked += 1
            return None
        if isinstance(outcome, Invalid):
            self._dead_letter(index, record, gate, stats, DeadLetterReason.INVALID_RECORD, outcome.error, 1)
            return None
        if isinstance(outcome, Newer):
            # Kept, not lost: a consumer that knows the version applies it on its start-up.
            self._dead_letter(index, record, gate, stats, DeadLetterReason.NEWER_VERSION, outcome.error, 1)
            return None
        if exhausted is not None and retry_at is not None:
            self._defer(record, gate, *exhausted, retry_at)
            return None
        if exhausted is not None:
            self._dead_letter(index, record, gate, stats, DeadLetterReason.HANDLER_FAILED, *exhausted)
            return None
        return outcome

    def _defer(
        self, record: ConsumedRecord, gate: KeyGate, error: str, attempts: int, retry_at: datetime
    ) -> None:
        """Not a dead letter yet: a row that blocks the key until the runner retries it."""
        waiting_id = write_dead_letter(
            group=self.group,
            context=self.context,
            record=record,
            reason=DeadLetterReason.HANDLER_FAILED,
            error=error,
            attempts=attempts,
            retry_at=retry_at,
        )
        if waiting_id is not None:
            gate.block(record, waiting_id)
        with correlation_scope(record.header("ce_correlationid") or None):
            log.warning(
                "%s: %s failed (attempt %s), retrying at %s: %s",
                self.context,
                record.describe(),
                attempts,
                retry_at.isoformat(),
                summary(error),
            )

    def _dead_letter(
        self,
        index: int,
        record: ConsumedRecord,
        gate: KeyGate,
        stats: RunStats,
        reason: DeadLetterReason,
        error: str,
        attempts: int,
    ) -> None:
        # A newer version is a rolling deploy, not a bug: it does not spend the budget.
        counted = reason != DeadLetterReason.NEWER_VERSION
        if counted and not self._budget.allows(stats.dead_lettered + 1):
            raise LimitReached(index)
        dead_letter_id = write_dead_letter(
            group=self.group,
            context=self.context,
            record=record,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        if dead_letter_id is None:  # a redelivery of a record that already is one
            stats.skipped += 1
            return
        gate.block(record, dead_letter_id)
        self._publisher.publish(
            record,
            dead_letter_id=dead_letter_id,
            group=self.group,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        self._copies += 1
        if counted:
            stats.dead_lettered += 1
        else:
            stats.parked += 1
        with correlation_scope(record.header("ce_correlationid") or None):
            if not counted:
                log.warning(
                    "%s: %s kept as #%s until a consumer that knows its version runs: %s",
                    self.context,
                    record.describe(),
                    dead_letter_id,
                    error,
                )
                return
            log.error(
                "%s: %s dead-lettered as #%s after %s attempt(s): %s",
                self.context,
                record.describe(),
                dead_letter_id,
                attempts,
                summary(error),
            )
