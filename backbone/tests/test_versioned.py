"""apply_if_newer: a view keeps the newest version of each aggregate, whatever the delivery order.
apply_all_if_newer: the same for a whole batch in one statement.
insert_if_absent: exactly one caller creates a "once per aggregate" row."""

import random
from collections.abc import Iterator

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext, isolate_apps

from backbone.testing import run_together
from backbone.versioned import apply_all_if_newer, apply_if_newer, insert_if_absent

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

    run_together(
        [
            lambda version=version: _apply("A-1", version=version, available=version * 10)
            for version in versions
        ],
        timeout=60,
    )

    row = view_table.objects.get(sku="A-1")
    assert (row.version, row.available) == (40, 400)


# --- apply_all_if_newer -------------------------------------------------------------------------


def _apply_all(*rows: tuple[str, int, int]) -> int:
    return apply_all_if_newer(
        LevelView,
        [{"sku": sku, "version": version, "available": available} for sku, version, available in rows],
        key_field="sku",
    )


def _levels(view: type[LevelView]) -> dict[str, tuple[int, int]]:
    return {row.sku: (row.version, row.available) for row in view.objects.all()}


@pytest.mark.django_db
def test_bulk_inserts_new_rows_with_model_defaults_in_one_statement(view_table: type[LevelView]) -> None:
    with CaptureQueriesContext(connection) as queries:
        written = _apply_all(("A-1", 1, 5), ("B-2", 3, 7))

    assert written == 2
    assert len(queries.captured_queries) == 1
    assert _levels(view_table) == {"A-1": (1, 5), "B-2": (3, 7)}
    row = view_table.objects.get(sku="A-1")
    assert row.note == "from default"
    assert row.updated_at is not None


@pytest.mark.django_db
def test_bulk_ignores_older_and_equal_versions_and_applies_newer(view_table: type[LevelView]) -> None:
    _apply_all(("A-1", 5, 50), ("B-2", 5, 50), ("C-3", 5, 50))
    view_table.objects.filter(sku="C-3").update(note="kept")

    written = _apply_all(("A-1", 4, 40), ("B-2", 5, 99), ("C-3", 6, 60), ("D-4", 1, 10))

    assert written == 2  # C-3 updated, D-4 inserted
    assert _levels(view_table) == {"A-1": (5, 50), "B-2": (5, 50), "C-3": (6, 60), "D-4": (1, 10)}
    assert view_table.objects.get(sku="C-3").note == "kept"  # fields the rows do not name stay


@pytest.mark.django_db
def test_bulk_keeps_the_newest_of_several_rows_of_one_key(view_table: type[LevelView]) -> None:
    # ON CONFLICT cannot touch a row twice in one statement: duplicates must be reduced first.
    written = _apply_all(("A-1", 2, 20), ("A-1", 4, 40), ("B-2", 1, 10), ("A-1", 3, 30), ("A-1", 4, 41))

    assert written == 2
    assert _levels(view_table) == {"A-1": (4, 40), "B-2": (1, 10)}  # the first of equal versions

    assert _apply_all(("A-1", 5, 50), ("A-1", 1, 10)) == 1
    assert _levels(view_table)["A-1"] == (5, 50)


@pytest.mark.django_db
def test_bulk_refreshes_auto_now_on_update(view_table: type[LevelView]) -> None:
    _apply_all(("A-1", 1, 1))
    before = view_table.objects.get(sku="A-1").updated_at

    _apply_all(("A-1", 2, 2))

    assert view_table.objects.get(sku="A-1").updated_at > before


def test_bulk_with_no_rows_writes_nothing() -> None:
    assert apply_all_if_newer(LevelView, [], key_field="sku") == 0  # no database access at all


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"sku": "A-1", "available": 1}], "version"),
        ([{"sku": "A-1", "version": 1, "available": 1}, {"sku": "B-2", "version": 1}], "same fields"),
        ([{"sku": "A-1", "version": 1, "colour": "red"}], "colour"),
    ],
)
def test_bulk_refuses_rows_it_cannot_write(rows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_all_if_newer(LevelView, rows, key_field="sku")


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_batches_converge_on_the_newest(view_table: type[LevelView]) -> None:
    # Each thread sends a shuffled batch over the same keys: sorted keys mean no deadlock.
    skus = [f"S-{n:02d}" for n in range(20)]
    batches = []
    for version in range(1, 9):
        batch = [(sku, version, version * 10) for sku in skus]
        random.Random(version).shuffle(batch)
        batches.append(batch)

    run_together([lambda batch=batch: _apply_all(*batch) for batch in batches], timeout=60)

    assert _levels(view_table) == {sku: (8, 80) for sku in skus}


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
    def claim(index: int) -> bool:
        return insert_if_absent(LevelView(sku="A-1", available=index, version=1), unique_fields=["sku"])

    outcomes = run_together([lambda index=index: claim(index) for index in range(12)], timeout=60)

    assert sorted(outcomes) == [False] * 11 + [True]
    assert view_table.objects.count() == 1
