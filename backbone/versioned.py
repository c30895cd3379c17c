"""Read models that apply a state-carrying event only when it is newer than what they hold.

A context keeps local views of other contexts' aggregates from events that carry the full
state and a per-aggregate version (e.g. `StockLevelChanged.version`). Events reach a view more
than once (redeliveries, replays, `rebuild_views`) and, after a rebuild or across partitions,
not always in order. Applying an event only when its version is newer makes the view converge
on the latest state whatever the delivery order, and makes every duplicate a no-op::

    applied = apply_if_newer(
        StockLevelView,
        lookup={"sku": event.sku},
        version=event.version,
        values={"name": event.name, "available": event.available},
    )

The check and the write are one statement, `INSERT ... ON CONFLICT DO UPDATE ... WHERE
view.version < EXCLUDED.version`, so two consumers racing on one row cannot both win: an
"is it newer?" SELECT followed by an UPDATE could let an older event overwrite a newer one.
"""

from typing import Any

from django.db import connections, models, router


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
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    # An unsaved instance applies the model's defaults and each field's own conversion to SQL.
    instance = model(**lookup, **values, **{version_field: version})
    fields = [field for field in meta.concrete_fields if _is_inserted(field, lookup)]
    updated = [
        field
        for field in fields
        if field.name in values or field.name == version_field or getattr(field, "auto_now", False)
    ]
    params = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    table = quote(meta.db_table)
    version_column = quote(meta.get_field(version_field).column)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({', '.join(quote(meta.get_field(name).column) for name in lookup)}) "
        f"DO UPDATE SET {', '.join(f'{quote(f.column)} = EXCLUDED.{quote(f.column)}' for f in updated)} "
        f"WHERE {table}.{version_column} < EXCLUDED.{version_column} "
        "RETURNING 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def _is_inserted(field: models.Field, lookup: dict[str, Any]) -> bool:
    """Database-generated columns (an auto primary key, generated fields) are left to the database."""
    if getattr(field, "generated", False):
        return False
    return not (getattr(field, "db_returning", False) and field.name not in lookup)
