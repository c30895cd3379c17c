"""The contract compatibility rules (backbone/compatibility.py) on fixture contracts.

The fixtures are Event subclasses declared without a topic, so they stay out of the shop's
registry; their contract attributes are set by hand and their upcasters live in a registry of
their own. Snapshots are written to and read from a temporary directory.
"""

import enum
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, create_model

from backbone import compatibility
from backbone.contracts import Event, EventRegistry

TYPE = "shipments.FixtureParcel"


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class SmallOnly(enum.Enum):
    SMALL = "small"


class Dimensions(BaseModel):
    width: int
    height: int


class DimensionsWithDepth(BaseModel):
    width: int
    height: int
    depth: int


def contract(version: int = 1, *, type_name: str = TYPE, **fields: Any) -> type[Event]:
    """A contract class with these fields (pydantic `create_model` definitions)."""
    model = create_model("FixtureParcel", __base__=Event, parcel_id=(str, ...), **fields)
    model.type_name = type_name
    model.topic = "shipments"
    model.key_field = "parcel_id"
    model.contract_version = version
    return model


BASE = {"grams": (int, ...), "size": (Size, Size.SMALL), "box": (Dimensions, ...)}


def snapshot(tmp_path: Path, *contracts: type[Event]) -> dict[tuple[str, int], compatibility.JsonSchema]:
    """Write the contracts' snapshots to tmp_path as `contracts snapshot` does, and read them back."""
    for cls in contracts:
        path = tmp_path / compatibility.snapshot_name(cls.type_name, cls.contract_version)
        path.write_text(compatibility.render(compatibility.schema_of(cls)))
    return compatibility.read_snapshots(tmp_path)


def problems(
    tmp_path: Path, old: type[Event], new: type[Event], upcasters: EventRegistry | None = None
) -> list[str]:
    found = compatibility.check([new], upcasters or EventRegistry(), snapshot(tmp_path, old))
    return [str(problem) for problem in found]


def test_an_unchanged_contract_passes(tmp_path: Path) -> None:
    assert problems(tmp_path, contract(**BASE), contract(**BASE)) == []


def test_a_new_optional_field_is_compatible_but_must_be_snapshotted(tmp_path: Path) -> None:
    additive = contract(**BASE, note=(str, ""), tracking=(str | None, None))

    assert problems(tmp_path, contract(**BASE), additive) == [STALE]
    snapshot(tmp_path, additive)
    assert compatibility.check([additive], EventRegistry(), compatibility.read_snapshots(tmp_path)) == []


def test_a_changed_description_only_makes_the_snapshot_stale(tmp_path: Path) -> None:
    described = contract(**{**BASE, "grams": (int, Field(description="net weight"))})

    assert problems(tmp_path, contract(**BASE), described) == [STALE]


NEXT_VERSION = (
    "old readers or old records of v1 break: keep v1 as it was and declare version=2 with an upcaster from v1"
)
STALE = f"{TYPE} v1: snapshot is stale (a compatible change): run `manage.py contracts snapshot`"
NO_UPCASTER = (
    f"{TYPE} v1: v1 records are still read but nothing upcasts them to v2: "
    f'register @registry.upcaster("{TYPE}", from_version=1)'
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": BASE["size"], "box": BASE["box"]}, "field grams: removed (or renamed)"),
        ({**BASE, "grams": (str, ...)}, "field grams: type changed from integer to string"),
        ({**BASE, "grams": (float, ...)}, "field grams: type changed from integer to number"),
        ({**BASE, "grams": (int | None, None)}, "field grams: type changed from integer to integer | null"),
        ({**BASE, "grams": (int, Field(gt=0))}, "field grams: exclusiveMinimum changed from None to 0"),
        ({**BASE, "weight": (int, ...)}, "field weight: new required field without a default"),
        ({**BASE, "size": (Size, ...)},
         "field size: now required (records written without it no longer read)"),
        ({**BASE, "size": (SmallOnly, SmallOnly.SMALL)},
         "field size: enum value 'large' removed (old records carry it)"),
        ({**BASE, "box": (DimensionsWithDepth, ...)},
         "field box.depth: new required field without a default"),
        ({**BASE, "box": (list[Dimensions], ...)},
         "field box: type changed from object to array of object"),
        ({**BASE, "size": (Literal["small", "large", "huge"], "small")},
         "field size: enum value 'huge' added (old readers refuse it)"),
    ],
    ids=[
        "removed", "type", "widened", "nullable", "tightened", "new-required", "made-required",
        "enum-removed", "nested-required", "array", "enum-added",
    ],
)  # fmt: skip
def test_a_breaking_change_within_a_version_names_type_version_field_and_what_to_do(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    found = problems(tmp_path, contract(**BASE), contract(**fields))

    assert found == [f"{TYPE} v1: {message}; {NEXT_VERSION}"]


def test_a_renamed_field_is_a_removal(tmp_path: Path) -> None:
    renamed = contract(**{"weight_grams": BASE["grams"], "size": BASE["size"], "box": BASE["box"]})

    assert problems(tmp_path, contract(**BASE), renamed) == [
        f"{TYPE} v1: field grams: removed (or renamed); {NEXT_VERSION}",
        f"{TYPE} v1: field weight_grams: new required field without a default; {NEXT_VERSION}",
    ]


def test_a_changed_key_field_is_breaking(tmp_path: Path) -> None:
    rekeyed = contract(**BASE, order_id=(str, ""))
    rekeyed.key_field = "order_id"

    assert problems(tmp_path, contract(**BASE), rekeyed) == [
        f"{TYPE} v1: (contract): key field changed from 'parcel_id' to 'order_id'; {NEXT_VERSION}"
    ]


def test_a_new_version_needs_an_upcaster_from_the_previous_one(tmp_path: Path) -> None:
    v2 = contract(2, **{**BASE, "grams": (str, ...)})

    assert problems(tmp_path, contract(**BASE), v2) == [
        NO_UPCASTER,
        f"{TYPE} v2: not snapshotted yet: run `manage.py contracts snapshot`",
    ]

    upcasters = EventRegistry()
    upcasters.upcaster(TYPE, from_version=1)(lambda payload: {**payload, "grams": str(payload["grams"])})
    assert problems(tmp_path, contract(**BASE), v2, upcasters) == [
        f"{TYPE} v2: not snapshotted yet: run `manage.py contracts snapshot`"
    ]
    snapshot(tmp_path, v2)  # v1's snapshot stays: its records are still retained
    assert compatibility.check([v2], upcasters, compatibility.read_snapshots(tmp_path)) == []


def test_every_step_from_the_oldest_kept_version_needs_an_upcaster(tmp_path: Path) -> None:
    upcasters = EventRegistry()
    upcasters.upcaster(TYPE, from_version=2)(dict)

    found = problems(tmp_path, contract(**BASE), contract(3, **BASE), upcasters)

    assert found == [
        NO_UPCASTER,
        f"{TYPE} v3: not snapshotted yet: run `manage.py contracts snapshot`",
    ]


def test_a_version_never_goes_back(tmp_path: Path) -> None:
    found = problems(tmp_path, contract(2, **BASE), contract(1, **BASE))

    assert found[0] == (
        f"{TYPE} v2: snapshotted, but the code declares v1: a version number never goes back; "
        "declare version=3 or later"
    )


def test_a_contract_that_disappeared_is_reported(tmp_path: Path) -> None:
    gone = contract(type_name="shipments.FixtureGone", **BASE)
    snapshots = snapshot(tmp_path, contract(**BASE), gone)
    found = compatibility.check([contract(**BASE)], EventRegistry(), snapshots)

    assert [str(problem) for problem in found] == [
        "shipments.FixtureGone v1: snapshotted but no contract declares it any more: old records and old "
        "readers still use it; restore the contract, or retire it by deleting its snapshots once no record "
        "of it is retained (docs/backbone.md, Changing a contract)"
    ]


def test_a_contract_never_snapshotted_asks_for_a_snapshot(tmp_path: Path) -> None:
    found = compatibility.check([contract(**BASE)], EventRegistry(), compatibility.read_snapshots(tmp_path))

    assert [str(problem) for problem in found] == [
        f"{TYPE} v1: not snapshotted yet: run `manage.py contracts snapshot`"
    ]
    assert not found[0].breaking
