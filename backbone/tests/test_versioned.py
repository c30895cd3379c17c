"""apply_if_newer: a view keeps the newest version of each aggregate, whatever the delivery order.
insert_if_absent: exactly one caller creates a "once per aggregate" row."""

import random
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext, isolate_apps

from backbone.versioned import apply_if_newer, insert_if_absent

with isolate_apps("backbone"):

    class LevelView(models.Model):
        """A view like Orders' view of stock levels, isolated from the project's migrations."""

        sku = models.CharField(max_length=50, unique=True)
        available = models.IntegerField()
        note = models.CharField(max_length=50, default="from default")
        version = models.PositiveBigIntegerField()
        updated_at = models.DateTimeField(auto_now=True)

        class Meta:
            app_label = "backbone"
            db_table = "test_versioned_level_view"

        def __str__(self) -> str:
            return f"{self.sku} v{self.version}"


@pytest.fixture
def view_table(django_db_blocker: object) -> Iterator[type[LevelView]]:
    # Created outside the test's transaction, so other connections (threads) see it too.
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.create_model(LevelView)
    yield LevelView
    with django_db_blocker.unblock(), connection.schema_editor() as editor:
        editor.delete_model(LevelView)


def _apply(sku: str, version: int, available: int) -> bool:
    return apply_if_newer(LevelView, lookup={"sku": sku}, version=version, values={"available": available})


@pytest.mark.django_db
def test_first_event_inserts_the_row_with_model_defaults(view_table: type[LevelView]) -> None:
    assert _apply("A-1", version=1, available=5) is True

    row = view_table.objects.get(sku="A-1")
    assert (row.available, row.version, row.note) == (5, 1, "from default")
    assert row.updated_at is not None


@pytest.mark.django_db
def test_newer_version_updates_older_and_equal_change_nothing(view_table: type[LevelView]) -> None:
    _apply("A-1", version=2, available=5)

    assert _apply("A-1", version=1, available=99) is False
    assert _apply("A-1", version=2, available=99) is False
    assert view_table.objects.get(sku="A-1").available == 5

    assert _apply("A-1", version=3, available=7) is True
    row = view_table.objects.get(sku="A-1")
    assert (row.available, row.version) == (7, 3)


@pytest.mark.django_db
def test_rows_of_different_aggregates_are_independent(view_table: type[LevelView]) -> None:
    _apply("A-1", version=5, available=1)

    assert _apply("B-2", version=1, available=2) is True
    assert dict(view_table.objects.values_list("sku", "version")) == {"A-1": 5, "B-2": 1}


@pytest.mark.django_db
def test_fields_not_in_values_are_kept_on_update(view_table: type[LevelView]) -> None:
    _apply("A-1", version=1, available=1)
    view_table.objects.filter(sku="A-1").update(note="kept")

    _apply("A-1", version=2, available=2)

    assert view_table.objects.get(sku="A-1").note == "kept"


def test_a_field_in_both_lookup_and_values_is_refused() -> None:
    with pytest.raises(ValueError, match="sku"):
        apply_if_newer(LevelView, lookup={"sku": "A-1"}, version=1, values={"sku": "B-2", "available": 1})


@pytest.mark.django_db(transaction=True)
def test_concurrent_out_of_order_deliveries_converge_on_the_newest(view_table: type[LevelView]) -> None:
    versions = list(range(1, 41))
    random.Random(7).shuffle(versions)
    start = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def deliver(version: int) -> None:
        try:
            start.wait(timeout=30)
            _apply("A-1", version=version, available=version * 10)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    row = view_table.objects.get(sku="A-1")
    assert (row.version, row.available) == (40, 400)


# --- insert_if_absent ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_insert_if_absent_inserts_once_and_the_instance_mirrors_the_row(view_table: type[LevelView]) -> None:
    first = LevelView(sku="A-1", available=3, version=1)

    assert insert_if_absent(first, unique_fields=["sku"]) is True
    assert first.pk is not None
    assert first._state.adding is False
    stored = view_table.objects.get(pk=first.pk)
    assert (stored.available, stored.note, stored.updated_at) == (3, "from default", first.updated_at)

    second = LevelView(sku="A-1", available=99, version=2)
    assert insert_if_absent(second, unique_fields=["sku"]) is False
    assert second.pk is None
    assert view_table.objects.get(sku="A-1").available == 3


@pytest.mark.django_db
def test_insert_if_absent_needs_no_savepoint(view_table: type[LevelView]) -> None:
    with CaptureQueriesContext(connection) as queries:
        insert_if_absent(LevelView(sku="A-1", available=1, version=1), unique_fields=["sku"])
        duplicate = insert_if_absent(LevelView(sku="A-1", available=2, version=1), unique_fields=["sku"])

    assert duplicate is False
    assert [query["sql"] for query in queries.captured_queries if "SAVEPOINT" in query["sql"]] == []
    assert view_table.objects.count() == 1  # and the transaction is still usable


@pytest.mark.django_db(transaction=True)
def test_concurrent_inserts_of_one_key_have_exactly_one_winner(view_table: type[LevelView]) -> None:
    start = threading.Barrier(12)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def claim(index: int) -> None:
        try:
            start.wait(timeout=30)
            outcomes.append(
                insert_if_absent(LevelView(sku="A-1", available=index, version=1), unique_fields=["sku"])
            )
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(outcomes) == [False] * 11 + [True]
    assert view_table.objects.count() == 1
