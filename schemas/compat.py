"""Compatibility guard: the breaking changes between two JSON Schemas of one event type.

The event log is kept forever and replayed, and consumers upgrade at their own pace, so a
published event schema may only grow: a new optional field is fine; a removed (or renamed)
field, a new required field or a narrowed type is not. Narrowed means the new schema rejects a
value the old one accepted: a type gone from a union, enum values removed, a tighter length or
range, a pattern or format added or changed. Such a change needs a new version of the event
(``.v<N+1>``, a new class and a new schema file).

Works on pydantic's JSON Schema output (local ``$ref`` into ``$defs``, ``anyOf`` for unions).
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# keyword -> True when a larger value is tighter (a minimum), False when smaller is tighter.
_BOUNDS: dict[str, bool] = {
    "minLength": True,
    "maxLength": False,
    "minimum": True,
    "exclusiveMinimum": True,
    "maximum": False,
    "exclusiveMaximum": False,
    "minItems": True,
    "maxItems": False,
    "minProperties": True,
    "maxProperties": False,
}
_KIND_OF_VALUE: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: bool is an int in Python
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (type(None), "null"),
    (list, "array"),
    (dict, "object"),
)


def _value_kind(value: Any) -> str:
    return next(kind for cls, kind in _KIND_OF_VALUE if isinstance(value, cls))


def _values(schema: Schema) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    return list(schema["enum"]) if "enum" in schema else None


def _kind(schema: Schema) -> str:
    if isinstance(schema.get("type"), str):
        return schema["type"]
    values = _values(schema)
    if values:
        kinds = {_value_kind(v) for v in values}
        if len(kinds) == 1:
            return kinds.pop()
    return "any"


def _accepts(new_kind: str, old_kind: str) -> bool:
    return new_kind in (old_kind, "any") or (new_kind == "number" and old_kind == "integer")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.roots = (old_root, new_root)
        self.problems: list[str] = []
        self.followed: set[tuple[str, str]] = set()

    def resolve(self, root: Schema, schema: Schema) -> Schema:
        """Follow a local $ref; keywords beside it (description, default) are kept."""
        while "$ref" in schema:
            target: Any = root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def branches(self, root: Schema, schema: Schema) -> list[Schema]:
        schema = self.resolve(root, schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [b for sub in schema[key] for b in self.branches(root, sub)]
        if isinstance(schema.get("type"), list):
            return [{**schema, "type": t} for t in schema["type"]]
        return [schema]

    def compare(self, path: str, old: Schema, new: Schema) -> None:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if refs[0] and refs[1]:
            if refs in self.followed:  # recursive models: each pair once
                return
            self.followed.add(refs)
        old_root, new_root = self.roots
        new_branches = self.branches(new_root, new)
        where = path or "(event)"
        for old_branch in self.branches(old_root, old):
            kind = _kind(old_branch)
            fits = [b for b in new_branches if _accepts(_kind(b), kind)]
            if not fits:
                self.problems.append(f"{where}: no longer accepts {kind}")
                continue
            same_title = [b for b in fits if b.get("title") == old_branch.get("title")]
            self.compare_branch(path, kind, old_branch, (same_title or fits)[0])

    def compare_branch(self, path: str, kind: str, old: Schema, new: Schema) -> None:
        where = path or "(event)"
        old_values, new_values = _values(old), _values(new)
        if new_values is not None:
            if old_values is None:
                self.problems.append(f"{where}: now restricted to {new_values}")
            else:
                removed = [v for v in old_values if v not in new_values]
                if removed:
                    self.problems.append(f"{where}: values removed: {removed}")
        for key, larger_is_tighter in _BOUNDS.items():
            if key not in new:
                continue
            if key not in old:
                self.problems.append(f"{where}: {key} {new[key]} added")
            elif (new[key] > old[key]) if larger_is_tighter else (new[key] < old[key]):
                self.problems.append(f"{where}: {key} tightened from {old[key]} to {new[key]}")
        for key in ("pattern", "format"):
            if key in new and new.get(key) != old.get(key):
                self.problems.append(f"{where}: {key} changed from {old.get(key)} to {new[key]}")
        if kind == "object":
            self.compare_object(path, old, new)
        elif kind == "array":
            self.compare(f"{path}[]", old.get("items", {}), new.get("items", {}))

    def compare_object(self, path: str, old: Schema, new: Schema) -> None:
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        for name, old_prop in old_props.items():
            if name in new_props:
                self.compare(_join(path, name), old_prop, new_props[name])
            else:
                self.problems.append(f"{_join(path, name)}: field removed (or renamed)")
        old_required = set(old.get("required", ()))
        for name in sorted(set(new.get("required", ())) - old_required):
            what = "became required" if name in old_props else "new required field"
            self.problems.append(f"{_join(path, name)}: {what}")
        old_extra, new_extra = (
            old.get("additionalProperties", True),
            new.get("additionalProperties", True),
        )
        if new_extra is False and old_extra is not False:
            self.problems.append(f"{path or '(event)'}: no longer accepts extra properties")
        elif isinstance(new_extra, dict):
            self.compare(f"{path}{{}}", old_extra if isinstance(old_extra, dict) else {}, new_extra)
        if "propertyNames" in new:
            self.compare(f"{path}{{key}}", old.get("propertyNames", {}), new["propertyNames"])


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """What a consumer or a replay of old events would trip over, one line per change."""
    comparison = _Comparison(old, new)
    comparison.compare("", old, new)
    return comparison.problems
