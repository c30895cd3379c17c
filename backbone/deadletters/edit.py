"""Editing a pending dead letter's payload before it is replayed.

An operator fixes what the producer got wrong (a field out of range, a missing value) and
replays the record instead of discarding it. The new payload must still be the event the
record's headers say it is: it is validated against the contract of its `ce_type` at its
`ce_dataversion` (as the consumer decodes it, upcasters included), and must keep the record's
key, so the per-key order the dead letter guards does not change. The value as consumed is
kept in `original_value`; every edit leaves a DeadLetterEdit row (who, when, which fields,
the payload before and after). Replay applies the edited value like any other.
"""

import json
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from backbone.conf import backbone_settings

from ..contracts import ContractError, registry
from ..envelope import Envelope, InvalidEnvelope
from ..models import DeadLetter, DeadLetterEdit
from ..records import decode_headers
from .errors import DeadLetterError
from .replay import lock_pending

JsonObject = dict[str, Any]


def parse_assignment(text: str) -> tuple[str, Any]:
    """`field=value` (or `a.b=value` for a nested field); the value is read as JSON when it
    is JSON (`seq=3`, `paid=true`, `lines=[...]`), as text otherwise (`note=late`)."""
    path, sep, raw = text.partition("=")
    if not sep or not path:
        raise DeadLetterError(f"--set {text!r}: expected field=value")
    try:
        return path, json.loads(raw)
    except ValueError:
        return path, raw


def apply_assignments(payload: JsonObject, assignments: Sequence[tuple[str, Any]]) -> JsonObject:
    edited: JsonObject = json.loads(json.dumps(payload))  # a deep copy: the payload stays as it is
    for path, value in assignments:
        *parents, name = path.split(".")
        target = edited
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                raise DeadLetterError(f"--set {path}: {part!r} is not an object in the payload")
            target = child
        target[name] = value
    return edited


def current_payload(letter: DeadLetter) -> JsonObject:
    raw = bytes(letter.value) if letter.value is not None else b""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise DeadLetterError(
            f"dead letter #{letter.pk}: its value is not a JSON object; use --payload-file to replace it"
        )
    return payload


def edit_payload(
    *,
    dead_letter_id: int,
    edited_by: str,
    payload: JsonObject | None = None,
    assignments: Sequence[tuple[str, Any]] = (),
) -> DeadLetterEdit:
    """Replace the payload of a pending dead letter with `payload`, or change the fields of
    `assignments` in its current payload (read under the lock: two edits never lose one),
    once the result passes its contract.

    Raises DeadLetterError, naming the field, when the new payload is not a valid event of the
    dead letter's type and version, changes its key, or the dead letter is not pending.
    """
    with transaction.atomic():
        letter = lock_pending(dead_letter_id)
        if payload is None:
            payload = apply_assignments(current_payload(letter), assignments)
        new_value = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        _validate(letter, new_value)
        previous = bytes(letter.value) if letter.value is not None else b""
        if letter.original_value is None:
            letter.original_value = previous
        letter.value = new_value
        letter.updated_at = timezone.now()
        letter.save(update_fields=["value", "original_value", "updated_at"])
        return DeadLetterEdit.objects.create(
            dead_letter=letter,
            edited_by=edited_by,
            changes=_changes(_as_object(previous), payload),
            previous_value=previous,
            new_value=new_value,
        )


def _validate(letter: DeadLetter, value: bytes) -> None:
    try:
        envelope = Envelope.from_headers(decode_headers(letter.headers))
    except InvalidEnvelope as error:
        raise DeadLetterError(f"dead letter #{letter.pk} cannot be edited: {error}") from None
    if len(value) > backbone_settings.EVENT_MAX_BYTES:
        raise DeadLetterError(f"edit refused: {len(value)} bytes is over EVENT_MAX_BYTES")
    try:
        # Strict: a typo in an operator's field name must not be silently ignored.
        event = registry.decode(envelope.type, envelope.data_version, value, strict=True)
    except ContractError as error:
        raise DeadLetterError(f"edit refused: {error}") from None
    if letter.key is not None and event.key != letter.key:
        field = type(event).key_field
        raise DeadLetterError(
            f"edit refused: field {field} is the record's key ({letter.key!r}); "
            f"changing it to {event.key!r} would apply the event out of its key's order"
        )


def _as_object(value: bytes) -> JsonObject:
    try:
        decoded = json.loads(value)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _changes(before: JsonObject, after: JsonObject) -> dict[str, list[Any]]:
    names = sorted(set(before) | set(after))
    return {
        name: [before.get(name), after.get(name)] for name in names if before.get(name) != after.get(name)
    }
