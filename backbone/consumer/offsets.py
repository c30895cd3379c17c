"""Kafka offsets of a consumer runner: moved on only after the database commit.

The runner remembers, per partition, the next offset whose record is not applied yet, and
commits it asynchronously after each database commit (a lost commit only means a
redelivery, which the inbox absorbs). Partitions revoked in a rebalance get their offsets
committed synchronously first; lost partitions are forgotten, their uncommitted work is
redelivered to the new owner. Lag is measured against the high watermarks.
"""

import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from ..failpoints import failpoint
from ..kafka import logical_topic, physical_topic
from ..records import ConsumedRecord
from .protocol import KafkaConsumer

log = logging.getLogger(__name__)


class Offsets:
    """The applied positions of one runner's partitions, and their commits to Kafka."""

    def __init__(self, *, context: str, consumer: KafkaConsumer) -> None:
        self.context = context
        self._consumer = consumer
        self._done: dict[tuple[str, int], int] = {}  # (physical topic, partition) -> next offset
        self._unconfirmed = False  # asynchronous commits sent since the last confirmed one

    def is_done(self, record: ConsumedRecord) -> bool:
        return record.offset < self._done.get((physical_topic(record.topic), record.partition), -1)

    def notice_rewinds(self, records: Sequence[ConsumedRecord]) -> None:
        """Say so when a partition's offsets go back: its topic was recreated or truncated, or
        the cluster changed. Reading it again is safe (the inbox knows every ce_id, and dead
        letters are matched by ce_id, never by position alone), but an operator should know."""
        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            done = self._done.get((physical_topic(topic), partition))
            if done is not None and offset < done:
                log.warning(
                    "%s: %s[%s] went back from offset %s to %s: topic recreated or truncated? "
                    "Reading it again; records already handled are recognised by their ce_id",
                    self.context,
                    topic,
                    partition,
                    done,
                    offset,
                )

    def mark_done(self, records: Sequence[ConsumedRecord]) -> None:
        """Called right after the database commit: now the offsets may move on."""
        if not records:
            return
        failpoint("consumer.after-db-commit")
        batch: dict[tuple[str, int], int] = {}
        for record in records:
            batch[(physical_topic(record.topic), record.partition)] = record.offset + 1
        self._done.update(batch)
        # Asynchronous: a lost commit only means a redelivery, which the inbox absorbs.
        self._commit(batch, asynchronous=True)
        self._unconfirmed = True

    def confirm_when_idle(self) -> None:
        """Once traffic pauses, commit the applied offsets once more, synchronously.

        An asynchronous commit can fail unseen (during a rebalance, say); with no later record
        on that partition, the group's offset would stay behind for good, and `status`, the
        metrics and every lag check would report records that were handled long ago.
        """
        if not self._unconfirmed:
            return
        try:
            self._consumer.commit(offsets=self._partitions(self._done), asynchronous=False)
        except KafkaException as error:
            log.info("%s: offset commit failed, trying again when idle: %s", self.context, error)
            return
        self._unconfirmed = False

    @staticmethod
    def _partitions(offsets: dict[tuple[str, int], int]) -> list[TopicPartition]:
        return [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]

    def _commit(self, offsets: dict[tuple[str, int], int], *, asynchronous: bool) -> None:
        if not offsets:
            return
        partitions = self._partitions(offsets)
        try:
            if asynchronous:
                self._consumer.commit(offsets=partitions, asynchronous=True)
            else:
                self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as error:
            log.warning("%s: offset commit failed (records will be redelivered): %s", self.context, error)

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.context, _describe_partitions(partitions))

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Another member takes these partitions: commit what is done with them, now."""
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        offsets = {tp: offset for tp, offset in self._done.items() if tp in revoked}
        self._commit(offsets, asynchronous=False)
        for tp in revoked:
            self._done.pop(tp, None)
        log.info("%s: revoked %s", self.context, _describe_partitions(partitions))

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The partitions are already someone else's: committing would fail; forget them."""
        for tp in partitions:
            self._done.pop((tp.topic, tp.partition), None)
        log.warning(
            "%s: lost %s (uncommitted work will be redelivered)",
            self.context,
            _describe_partitions(partitions),
        )

    def close(self) -> None:
        self._commit(self._done, asynchronous=False)
        self._consumer.close()

    def lag(self, *, fresh: bool) -> int | None:
        """Records behind the end of the assigned partitions (None while unknown)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return None
        positions = self._consumer.position(assignment)
        unknown = [tp for tp in positions if tp.offset < 0]
        committed: dict[tuple[str, int], int] = {}
        if unknown:
            if not fresh:
                return None
            committed = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(unknown, 10)}
        total = 0
        for tp in positions:
            watermarks = self._consumer.get_watermark_offsets(tp, timeout=10, cached=not fresh)
            if watermarks is None or watermarks[1] < 0:
                return None
            low, high = watermarks
            offset = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            total += max(0, high - (offset if offset >= 0 else low))
        return total

    def partition_lags(self) -> dict[tuple[str, int], int]:
        """Lag per assigned (logical topic, partition) whose position and cached high watermark
        are known; no broker round trip, so the loop can ask every second."""
        assignment = self._consumer.assignment()
        if not assignment:
            return {}
        lags: dict[tuple[str, int], int] = {}
        for tp in self._consumer.position(assignment):
            watermarks = self._consumer.get_watermark_offsets(tp, timeout=1, cached=True)
            if tp.offset < 0 or watermarks is None or watermarks[1] < 0:
                continue  # nothing fetched yet: unknown, rather than a made-up zero
            lags[(logical_topic(tp.topic), tp.partition)] = max(0, watermarks[1] - tp.offset)
        return lags


def _describe_partitions(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
