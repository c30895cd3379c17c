"""Writes that stay right when an event arrives twice, each done in one statement.

`apply_if_newer` is for read models. A context keeps local views of other contexts'
aggregates from events that carry the full state and a per-aggregate version (e.g.
`StockLevelChanged.version`). Events reach a view more than once (redeliveries, replays,
`rebuild_views`) and, after a rebuild or across partitions, not always in order. Applying an
event only when its version is newer makes the view converge on the latest state whatever the
delivery order, and makes every duplicate a no-op::

    applied = apply_if_newer(
        StockLevelView,
        lookup={"sku": event.sku},
        version=event.version,
        values={"name": event.name, "available": event.available},
    )

The check and the write are one statement, `INSERT ... ON CONFLICT DO UPDATE ... WHERE
view.version < EXCLUDED.version`, so two consumers racing on one row cannot both win: an
"is it newer?" SELECT followed by an UPDATE could let an older event overwrite a newer one.

`apply_all_if_newer` does the same for many events in one statement, for batch handlers
(`@subscribe_batch`): one round trip per batch instead of one per event::

    apply_all_if_newer(
        StockLevelView,
        [{"sku": event.sku, "available": event.available, "version": event.version} for event, _ in items],
        key_field="sku",
    )

It sends one array per column and upserts `SELECT ... FROM unnest(...)`. ON CONFLICT cannot
touch one row twice in one statement, so a key that occurs more than once is first reduced to
its newest row.

`insert_if_absent` is for a handler's "once per aggregate" rows (a reservation per order, a
payment per order): `INSERT ... ON CONFLICT DO NOTHING` tells whether this call created the
row. Unlike `get_or_create` it needs no savepoint to survive a duplicate, which matters
inside the consumer runner's batch transaction: a savepoint per event costs round trips, and
more than 64 subtransactions in one transaction slow down every other session's snapshots.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.options import Options
from django.utils import timezone


def apply_if_newer(
    model: type[models.Model],
    *,
    lookup: dict[str, Any],
    version: int,
    values: dict[str, Any],
    version_field: str = "version",
) -> bool:
    """Insert the row, or update it when `version` is newer than the stored one.

    `lookup` names the fields that identify the aggregate; they must be the primary key or
    carry a unique constraint (PostgreSQL needs it as the conflict target). Fields with
    `auto_now` are refreshed whenever the row is written. Returns True when the row was
    inserted or updated, False when the view already held this version or a newer one.
    """
    overlap = set(lookup) & (set(values) | {version_field})
    if overlap:
        raise ValueError(f"fields both in lookup and values: {sorted(overlap)}")
    meta = model._meta
    connection = _connection_for(model)
    quote = connection.ops.quote_name
    instance = model(**lookup, **values, **{version_field: version})
    updated = [
        field
        for field in _inserted_fields(meta.concrete_fields, lookup)
        if field.name in values or field.name == version_field or getattr(field, "auto_now", False)
    ]
    table = quote(meta.db_table)
    version_column = quote(_column(meta, version_field))
    assignments = ", ".join(f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in updated)
    on_conflict = f"DO UPDATE SET {assignments} WHERE {table}.{version_column} < EXCLUDED.{version_column}"
    return _insert(instance, conflict_fields=lookup, on_conflict=on_conflict) is not None


def apply_all_if_newer(
    model: type[models.Model],
    rows: Iterable[Mapping[str, Any]],
    *,
    key_field: str,
    version_field: str = "version",
) -> int:
    """Apply every row (field name -> value, key and version included) that is newer than the
    stored one, in one statement; returns how many rows were inserted or updated.

    The bulk form of `apply_if_newer`, with the same rules: `key_field` is the primary key or
    unique; on insert, fields a row leaves out take their defaults; on update, only the fields
    the rows name (and `auto_now` ones) change. Every row names the same fields. Of the rows of
    one key, the one with the highest version is applied (the first of equals).
    """
    newest = _newest_per_key(rows, key_field, version_field)
    if not newest:
        return 0
    meta = model._meta
    connection = _connection_for(model)
    quote = connection.ops.quote_name
    named = set(newest[0])
    fields = _inserted_fields(meta.concrete_fields, [key_field])
    unknown = named - {field.name for field in fields}
    if unknown:
        raise ValueError(f"{meta.label} has no (writable) fields {sorted(unknown)}")
    # Stamps not given by the rows are one value for the whole statement, bound once.
    stamped = [field for field in fields if field.name not in named and _is_stamp(field)]
    from_rows = [field for field in fields if field not in stamped]
    columns: list[list[Any]] = [[] for _ in from_rows]
    for row in newest:
        for column, field in zip(columns, from_rows, strict=True):
            value = row[field.name] if field.name in row else field.get_default()
            column.append(field.get_db_prep_save(value, connection))
    now = timezone.now()
    stamps = [field.get_db_prep_save(now, connection) for field in stamped]

    table = quote(meta.db_table)
    version_column = quote(_column(meta, version_field))
    updated = [
        field
        for field in fields
        if field.name != key_field and (field.name in named or getattr(field, "auto_now", False))
    ]
    assignments = ", ".join(f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in updated)
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in from_rows)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(field.column) for field in [*from_rows, *stamped])}) "
        f"SELECT {', '.join(['batch.*', *['%s'] * len(stamped)])} "
        f"FROM unnest({arrays}) AS batch ({', '.join(quote(field.column) for field in from_rows)}) "
        f"ON CONFLICT ({quote(_column(meta, key_field))}) "
        f"DO UPDATE SET {assignments} WHERE {table}.{version_column} < EXCLUDED.{version_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*stamps, *columns])
        written: int = cursor.rowcount
        return written


def _newest_per_key(
    rows: Iterable[Mapping[str, Any]], key_field: str, version_field: str
) -> list[Mapping[str, Any]]:
    """One row per key, the newest; in key order, so two statements over overlapping keys lock
    their rows in the same order and cannot deadlock each other."""
    newest: dict[Any, Mapping[str, Any]] = {}
    names: set[str] | None = None
    for row in rows:
        if names is None:
            names = set(row)
            missing = {key_field, version_field} - names
            if missing:
                raise ValueError(f"rows must name {sorted(missing)}")
        elif row.keys() != names:
            raise ValueError(f"every row must name the same fields: {sorted(row)} vs {sorted(names)}")
        kept = newest.get(row[key_field])
        if kept is None or row[version_field] > kept[version_field]:
            newest[row[key_field]] = row
    return [newest[key] for key in sorted(newest)]


def _is_stamp(field: models.Field[Any, Any]) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


def insert_if_absent(instance: models.Model, *, unique_fields: Iterable[str]) -> bool:
    """Insert the unsaved `instance` unless a row with the same `unique_fields` exists.

    Returns True when this call inserted it; `instance` then mirrors the row (defaults,
    `auto_now_add` stamps and a database-generated primary key included). Returns False when
    the row existed; a concurrent insert of the same key makes this call wait for the other
    transaction and then count as existing, so exactly one of them gets True.
    """
    returned = _insert(instance, conflict_fields=list(unique_fields), on_conflict="DO NOTHING")
    if returned is None:
        return False
    if instance.pk is None:
        instance.pk = returned
    instance._state.adding = False
    instance._state.db = router.db_for_write(type(instance))
    return True


def _insert(instance: models.Model, *, conflict_fields: Iterable[str], on_conflict: str) -> Any | None:
    """`INSERT ... ON CONFLICT (...) <on_conflict> RETURNING pk`; the returned pk, or None."""
    meta = instance._meta
    connection = _connection_for(type(instance))
    quote = connection.ops.quote_name
    conflict_fields = list(conflict_fields)
    fields = _inserted_fields(meta.concrete_fields, conflict_fields)
    # pre_save applies defaults, auto_now(_add) stamps and each field's conversion to SQL.
    params = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(quote(_column(meta, name)) for name in conflict_fields)}) "
        f"{on_conflict} RETURNING {quote(meta.pk.column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _column(meta: Options[Any], name: str) -> str:
    """The column of a concrete field; reverse relations and generic keys have none."""
    field = meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise ValueError(f"{meta.label}.{name} is not a column")
    return field.column


def _connection_for(model: type[models.Model]) -> BaseDatabaseWrapper:
    return connections[router.db_for_write(model)]


def _inserted_fields(
    fields: Iterable[models.Field[Any, Any]], explicit: Iterable[str]
) -> list[models.Field[Any, Any]]:
    """All columns but those the database generates (an auto primary key, generated fields)."""
    named = set(explicit)
    return [
        field
        for field in fields
        if not getattr(field, "generated", False)
        and not (getattr(field, "db_returning", False) and field.name not in named)
    ]
