"""Fixed statements (backbone/statements.py): the rows the ORM would load, or a refusal at once."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backbone.models import DeadLetter
from backbone.statements import FixedSelect

pytestmark = pytest.mark.django_db

User = get_user_model()
_BY_NAME = FixedSelect(User, "WHERE username = ANY(%s) ORDER BY username")


def test_the_rows_are_the_instances_the_orm_loads() -> None:
    for name in ["cleo", "abe", "bo"]:
        User.objects.create_user(name, email=f"{name}@example.com", password="x")
    with CaptureQueriesContext(connection) as captured:
        users = _BY_NAME([["bo", "cleo", "nobody"]])
    assert len(captured.captured_queries) == 1
    loaded = list(User.objects.filter(username__in=["bo", "cleo"]).order_by("username"))
    fields = [field.attname for field in User._meta.concrete_fields]
    assert [[getattr(user, name) for name in fields] for user in users] == [
        [getattr(user, name) for name in fields] for user in loaded
    ]
    users[0].first_name = "Bo"
    users[0].save(update_fields=["first_name"])  # saved rows: an update, not an insert
    assert User.objects.get(username="bo").first_name == "Bo"
    assert _BY_NAME([[]]) == []


def test_a_model_whose_fields_convert_database_values_is_refused_when_made() -> None:
    with pytest.raises(TypeError, match="headers"):
        FixedSelect(DeadLetter, "WHERE id = %s")
