"""Model instances from one fixed statement, for the reads of a hot path.

Compiling a queryset costs more CPU than PostgreSQL's answer to it when the statement is short
(about a millisecond against a tenth: a consumer's locking read, once per event). A
`FixedSelect` writes its statement once from the model's own columns; psycopg prepares it, and
each row becomes an instance through `Model.from_db`, Django's documented hook for loading
rows. Only for models whose fields need no conversion from the database (`from_db_value`):
those it refuses when it is made, at import, not in a request.

    _LOCKED = FixedSelect(StockLevel, "WHERE product_id = ANY(%s) ORDER BY product_id FOR UPDATE")
    levels = _LOCKED([skus])
"""

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import Model

M = TypeVar("M", bound=Model)


class FixedSelect(Generic[M]):
    """`SELECT <every column of model> FROM <its table> <rest>`, as a list of instances."""

    def __init__(self, model: type[M], rest: str) -> None:
        fields = model._meta.concrete_fields
        converted = converted_fields(model)
        if converted:
            raise TypeError(f"{model.__name__}'s fields {converted} convert database values: use the ORM")
        self.model = model
        self.field_names = [field.attname for field in fields]
        columns = ", ".join(f'"{field.column}"' for field in fields)
        self.sql = f'SELECT {columns} FROM "{model._meta.db_table}" {rest}'

    def __call__(self, params: Sequence[Any]) -> list[M]:
        # The write database: these are the reads of a writing transaction (locks, checks).
        database = router.db_for_write(self.model)
        with connections[database].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        return [self.model.from_db(database, self.field_names, row) for row in rows]


def converted_fields(model: type[Model]) -> list[str]:
    """The fields whose values the ORM converts on loading: rows of the cursor are not enough."""
    return [field.name for field in model._meta.concrete_fields if hasattr(field, "from_db_value")]
