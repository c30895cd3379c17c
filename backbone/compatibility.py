"""Contract compatibility: the committed snapshots against the contracts the code declares.

Every event contract has a committed JSON Schema per version, `contracts/<type>.v<N>.schema.json`
(written by `manage.py contracts snapshot`). `manage.py contracts check` (run by `make lint`)
compares each contract's current schema with its snapshot and reports, one line each, what
would break a running shop.

The shop enforces Confluent Schema Registry's FULL mode within one contract version (transitive,
since every change is checked against the snapshot, which only ever grows by compatible
changes): new code must read every record of that version already written (BACKWARD: retained
topics are replayed by `rebuild_views`, dead letters are retried), and code still running the
old release must read what the new release writes (FORWARD: in a rolling deploy producers and
consumers change at different times). Readers are tolerant (they ignore fields they do not
know), so within a version the only change allowed is a new field with a default. Anything else
(a field removed, renamed, made required or given a different type or constraint, an enum value
added or removed, the key or topic changed) needs a new version with an upcaster from the
previous one: an upcaster is BACKWARD compatibility written as code, and a consumer parks a
version it does not know yet rather than misreading it.

One deliberate step beyond FULL: removing a field that has a default is FULL-compatible for a
tolerant reader, but its old readers would then silently read the default instead of the fact,
so a removal needs a new version too.

The comparison handles the shapes pydantic emits for these contracts: objects with
`properties`/`required`, `$defs`/`$ref`, `anyOf` (Optional, unions), arrays, enums and
`const`, and leaf types with `format` and numeric or length constraints.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backbone.contracts import Event, EventRegistry

JsonSchema = dict[str, Any]

SNAPSHOT_SUFFIX = ".schema.json"
SNAPSHOT_COMMAND = "manage.py contracts snapshot"

# Keywords that change which values a reader accepts. Any change to one of them, tighter or
# looser, breaks one direction of FULL compatibility. Titles, descriptions, examples and
# defaults do not change what is accepted: a change to them only makes a snapshot stale.
_VALUE_KEYWORDS = (
    "type",
    "format",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one contract; `breaking` when it must not be snapshotted as is."""

    type_name: str
    version: int
    message: str
    breaking: bool = True

    def __str__(self) -> str:
        return f"{self.type_name} v{self.version}: {self.message}"


def snapshot_name(type_name: str, version: int) -> str:
    return f"{type_name}.v{version}{SNAPSHOT_SUFFIX}"


def schema_of(contract: type[Event]) -> JsonSchema:
    """The schema as it is snapshotted: pydantic's (validation mode: what a reader accepts),
    with the type as `$id` and the topic and key, which are part of the contract too."""
    return {
        "$id": contract.type_name,
        "x-topic": contract.topic,
        "x-key": contract.key_field,
        **contract.model_json_schema(),
    }


def render(schema: JsonSchema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def read_snapshots(directory: Path) -> dict[tuple[str, int], JsonSchema]:
    """Every snapshot in `directory`, by (type, version)."""
    found: dict[tuple[str, int], JsonSchema] = {}
    for path in sorted(directory.glob(f"*{SNAPSHOT_SUFFIX}")):
        stem = path.name.removesuffix(SNAPSHOT_SUFFIX)
        type_name, _, version = stem.rpartition(".v")
        if not type_name or not version.isdigit():
            continue
        found[(type_name, int(version))] = json.loads(path.read_text())
    return found


def check(
    contracts: Iterable[type[Event]],
    upcasters: EventRegistry,
    snapshots: Mapping[tuple[str, int], JsonSchema],
) -> list[Problem]:
    """Every problem of every contract against the snapshots, in a stable order."""
    problems: list[Problem] = []
    declared = {contract.type_name: contract for contract in contracts}
    for type_name, contract in sorted(declared.items()):
        versions = sorted(version for name, version in snapshots if name == type_name)
        problems += _check_contract(contract, versions, upcasters, snapshots)
    for type_name, version in sorted(set(snapshots)):
        if type_name not in declared:
            problems.append(
                Problem(
                    type_name,
                    version,
                    "snapshotted but no contract declares it any more: old records and old readers "
                    "still use it; restore the contract, or retire it by deleting its snapshots "
                    "once no record of it is retained (docs/backbone.md, Changing a contract)",
                )
            )
    return problems


def _check_contract(
    contract: type[Event],
    versions: list[int],
    upcasters: EventRegistry,
    snapshots: Mapping[tuple[str, int], JsonSchema],
) -> Iterator[Problem]:
    name, current = contract.type_name, contract.contract_version
    schema = schema_of(contract)
    for version in versions:
        if version > current:
            yield Problem(
                name,
                version,
                f"snapshotted, but the code declares v{current}: a version number never goes back; "
                f"declare version={version + 1} or later",
            )
    # Decode upcasts one version at a time, so every step from the oldest kept version is needed.
    oldest = min(versions, default=current)
    for step in range(oldest, current):
        if not upcasters.has_upcaster(name, step):
            yield Problem(
                name,
                step,
                f"v{step} records are still read but nothing upcasts them to v{step + 1}: register "
                f'@registry.upcaster("{name}", from_version={step})',
            )
    old = snapshots.get((name, current))
    if old is None:
        yield Problem(name, current, f"not snapshotted yet: run `{SNAPSHOT_COMMAND}`", breaking=False)
        return
    breaks = list(compare(old, schema))
    advice = (
        f"old readers or old records of v{current} break: keep v{current} as it was "
        f"and declare version={current + 1} with an upcaster from v{current}"
    )
    for where, what in breaks:
        yield Problem(name, current, f"{f'field {where}' if where else '(contract)'}: {what}; {advice}")
    if not breaks and old != schema:
        stale = f"snapshot is stale (a compatible change): run `{SNAPSHOT_COMMAND}`"
        yield Problem(name, current, stale, breaking=False)


def compare(old: JsonSchema, new: JsonSchema) -> Iterator[tuple[str, str]]:
    """(field path, what) for each change from `old` to `new` that breaks FULL compatibility;
    the path is empty for the contract as a whole, `lines[].sku` for a field in a list."""
    for keyword in ("x-topic", "x-key"):
        if old.get(keyword) != new.get(keyword):
            what = "topic" if keyword == "x-topic" else "key field"
            yield "", f"{what} changed from {old.get(keyword)!r} to {new.get(keyword)!r}"
    yield from _compare(_Document(old), old, _Document(new), new, "", set())


class _Document:
    """One schema document, to resolve its local `$ref`s (`#/$defs/Name`)."""

    def __init__(self, schema: JsonSchema) -> None:
        self.defs: dict[str, JsonSchema] = schema.get("$defs", {})

    def resolve(self, schema: JsonSchema) -> tuple[str | None, JsonSchema]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return None, schema
        name = ref.removeprefix("#/$defs/")
        # Keywords beside a $ref (pydantic puts a field's title/default there) are kept.
        siblings = {key: value for key, value in schema.items() if key != "$ref"}
        return ref, {**self.defs.get(name, {}), **siblings}


def _compare(
    old_doc: _Document,
    old: JsonSchema,
    new_doc: _Document,
    new: JsonSchema,
    where: str,
    seen: set[tuple[str | None, str | None]],
) -> Iterator[tuple[str, str]]:
    old_ref, old = old_doc.resolve(old)
    new_ref, new = new_doc.resolve(new)
    if old_ref is not None and new_ref is not None:
        if (old_ref, new_ref) in seen:  # a recursive model: this pair is being compared already
            return
        seen = seen | {(old_ref, new_ref)}
    if _is_object(old) and _is_object(new):
        yield from _compare_objects(old_doc, old, new_doc, new, where, seen)
        return
    structured = _kind(old) in _BRANCHES or _kind(old) == "array"
    if _kind(old) != _kind(new) or (not structured and describe(old) != describe(new)):
        yield where, f"type changed from {describe(old, old_doc)} to {describe(new, new_doc)}"
        return
    for keyword in _VALUE_KEYWORDS:
        if old.get(keyword) != new.get(keyword):
            yield where, f"{keyword} changed from {old.get(keyword)!r} to {new.get(keyword)!r}"
    yield from _compare_enums(old, new, where)
    if "items" in old or "items" in new:
        yield from _compare(old_doc, old.get("items", {}), new_doc, new.get("items", {}), f"{where}[]", seen)
    for keyword in _BRANCHES:
        yield from _compare_branches(old_doc, old, new_doc, new, keyword, where, seen)


def _compare_objects(
    old_doc: _Document,
    old: JsonSchema,
    new_doc: _Document,
    new: JsonSchema,
    where: str,
    seen: set[tuple[str | None, str | None]],
) -> Iterator[tuple[str, str]]:
    old_fields: dict[str, JsonSchema] = old.get("properties", {})
    new_fields: dict[str, JsonSchema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    prefix = f"{where}." if where else ""
    for field in old_fields:
        if field not in new_fields:
            yield f"{prefix}{field}", "removed (or renamed)"
    for field, schema in new_fields.items():
        if field not in old_fields:
            if field in new_required:
                yield f"{prefix}{field}", "new required field without a default"
            continue
        if field in new_required and field not in old_required:
            yield f"{prefix}{field}", "now required (records written without it no longer read)"
        yield from _compare(old_doc, old_fields[field], new_doc, schema, f"{prefix}{field}", seen)
    old_values, new_values = old.get("additionalProperties"), new.get("additionalProperties")
    if isinstance(old_values, dict) and isinstance(new_values, dict):  # a mapping: dict[str, X]
        yield from _compare(old_doc, old_values, new_doc, new_values, f"{where}{{}}", seen)


def _compare_enums(old: JsonSchema, new: JsonSchema, where: str) -> Iterator[tuple[str, str]]:
    old_values, new_values = old.get("enum"), new.get("enum")
    if old_values is None and new_values is None:
        return
    old_set, new_set = set(map(_hashable, old_values or [])), set(map(_hashable, new_values or []))
    if old_values is None or new_values is None:
        yield where, f"enum changed from {old_values!r} to {new_values!r}"
        return
    for value in sorted(old_set - new_set, key=str):
        yield where, f"enum value {value!r} removed (old records carry it)"
    for value in sorted(new_set - old_set, key=str):
        yield where, f"enum value {value!r} added (old readers refuse it)"


def _compare_branches(
    old_doc: _Document,
    old: JsonSchema,
    new_doc: _Document,
    new: JsonSchema,
    keyword: str,
    where: str,
    seen: set[tuple[str | None, str | None]],
) -> Iterator[tuple[str, str]]:
    old_branches: list[JsonSchema] = old.get(keyword, [])
    new_branches: list[JsonSchema] = new.get(keyword, [])
    if not old_branches and not new_branches:
        return
    if len(old_branches) != len(new_branches):
        yield where, f"type changed from {describe(old, old_doc)} to {describe(new, new_doc)}"
        return
    for old_branch, new_branch in zip(old_branches, new_branches, strict=True):
        yield from _compare(old_doc, old_branch, new_doc, new_branch, where, seen)


def describe(schema: JsonSchema, document: "_Document | None" = None) -> str:
    """A short name for a schema's shape: `integer`, `string(uuid)`, `array of X`, `X | null`."""
    if document is not None:
        _, schema = document.resolve(schema)
    for keyword, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        if keyword in schema:
            return joiner.join(describe(branch, document) for branch in schema[keyword])
    if "const" in schema:
        return f"const {schema['const']!r}"
    if "enum" in schema:
        return "enum"
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " | ".join(kind)
    if kind == "array":
        return f"array of {describe(schema.get('items', {}), document)}"
    if "format" in schema:
        return f"{kind}({schema['format']})"
    return str(kind)


_BRANCHES = ("anyOf", "oneOf", "allOf")


def _kind(schema: JsonSchema) -> str:
    """The branching keyword or the type: schemas of one kind are compared part by part."""
    for keyword in _BRANCHES:
        if keyword in schema:
            return keyword
    return str(schema.get("type"))


def _is_object(schema: JsonSchema) -> bool:
    return schema.get("type") == "object" or "properties" in schema


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
