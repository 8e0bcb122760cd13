"""The shapes of the events: what each event type's payload may hold, as JSON Schema
(pydantic's, less its titles, descriptions and defaults), every model once under `$defs`.

A release's shapes are frozen when it is cut (releases.py), so a later release can write its
events as that release reads them (`project`: the fields it does not know left out), say
which event types need that (`widened`), and list what changed between the two (`changes`,
which docs/releases.md must name). `python -m services.common.event_shapes` prints this
release's shapes, to freeze when it is cut.
"""

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

# Keywords that describe a value without constraining it: not part of a shape.
ANNOTATIONS = frozenset({"title", "description", "default", "examples"})
Schema = dict[str, Any]
Shapes = dict[str, Any]


def shapes_of(event_types: Mapping[str, type[BaseModel]]) -> Shapes:
    """{"events": {event type: its model's name}, "$defs": {model name: its schema}}."""
    defs: dict[str, Schema] = {}
    events = {}
    for event_type, model in sorted(event_types.items()):
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
        events[event_type] = model.__name__
    return {"events": events, "$defs": {name: bare(defs[name]) for name in sorted(defs)}}


@cache
def current_shapes() -> Shapes:
    """This release's shapes, from its contracts."""
    from services.common.contracts import EVENT_TYPES

    return shapes_of(EVENT_TYPES)


def bare(schema: Any) -> Any:
    """The schema without its annotations, at every depth (a property named like one stays)."""
    if isinstance(schema, list):
        return [bare(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {key: (bare_properties(value) if key == "properties" else bare(value))
            for key, value in schema.items() if key not in ANNOTATIONS}


def bare_properties(properties: dict[str, Any]) -> dict[str, Any]:
    return {name: bare(value) for name, value in properties.items()}


def resolved(schema: Schema, defs: Mapping[str, Schema]) -> Schema:
    """The schema a `$ref` names, or the schema itself."""
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


# ---- writing for an older release's readers --------------------------------------------


@dataclass(kw_only=True)
class Narrowing:
    """Walks a payload along a schema, keeping what the schema's readers know."""

    defs: Mapping[str, Schema]
    # Models the readers read whole (`whole_models`): their values are kept as they are, unwalked.
    whole: frozenset[str] = frozenset()
    left_out: list[str] = field(default_factory=list)  # the paths of what was left out

    def value(self, value: Any, schema: Schema, *, path: str) -> Any:
        if schema.get("$ref", "").rsplit("/", 1)[-1] in self.whole:
            return value
        schema = resolved(schema, self.defs)
        if "anyOf" in schema:
            branch = next((b for b in schema["anyOf"] if fits(value, resolved(b, self.defs))), None)
            return value if branch is None else self.value(value, branch, path=path)
        if isinstance(value, dict):
            return self.members(value, schema, path=path)
        if isinstance(value, list):
            return [self.value(item, item_schema(schema, i), path=f"{path}[]") for i, item in enumerate(value)]
        return value

    def members(self, value: dict[str, Any], schema: Schema, *, path: str) -> dict[str, Any]:
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        kept = {}
        for name, member in value.items():
            where = f"{path}.{name}" if path else name
            if name in properties:
                kept[name] = self.value(member, properties[name], path=where)
            elif isinstance(extra, dict):
                kept[name] = self.value(member, extra, path=where)
            elif extra is False:
                self.left_out.append(where)
            else:
                kept[name] = member
        return kept


def item_schema(schema: Schema, index: int) -> Schema:
    """The schema of an array's item at `index` (a tuple's by position); {} (anything) else."""
    prefix = schema.get("prefixItems", [])
    if index < len(prefix):
        return dict(prefix[index])
    items = schema.get("items", {})
    return items if isinstance(items, dict) else {}


JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def fits(value: Any, schema: Schema) -> bool:
    """Whether `value` is of the JSON type `schema` names (a schema naming none takes anything)."""
    if "const" in schema or "enum" in schema:
        return value in schema.get("enum", [schema.get("const")])
    named = schema.get("type")
    if named is None:
        return not ("properties" in schema and not isinstance(value, dict))
    kinds = set(named) if isinstance(named, list) else {named}
    if isinstance(value, bool):
        return "boolean" in kinds
    if isinstance(value, int):
        return bool(kinds & {"integer", "number"})
    if isinstance(value, float):
        return "number" in kinds
    return JSON_TYPES.get(type(value)) in kinds


def project(payload: dict[str, Any], event_type: str, *, shapes: Shapes,
            whole: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[str]]:
    """The payload as the release of `shapes` reads it: without the fields it does not know
    (which a reader whose models forbid extra fields would refuse), and the paths left out.
    The values of the `whole` models are kept unwalked (the readers know all they may hold)."""
    return project_model(payload, shapes["events"][event_type], shapes=shapes, whole=whole)


def project_model(payload: dict[str, Any], model: str, *, shapes: Shapes,
                  whole: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[str]]:
    """`project` for a value of one of the events' models (`JobSpec`), wherever it is kept."""
    narrowing = Narrowing(defs=shapes["$defs"], whole=whole)
    projected = narrowing.members(payload, shapes["$defs"][model], path="")
    return projected, narrowing.left_out


# ---- what changed between two releases ---------------------------------------------------


def paths(schema: Schema, defs: Mapping[str, Schema], *, prefix: str = "", seen: tuple[str, ...] = ()) -> Iterator[str]:
    """Every member path a payload of `schema` may hold (`job.styles[].name`)."""
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    if name in seen:
        return
    schema, seen = resolved(schema, defs), (*seen, name) if name else seen
    for branch in schema.get("anyOf", []):
        yield from paths(branch, defs, prefix=prefix, seen=seen)
    for member, member_schema in schema.get("properties", {}).items():
        where = f"{prefix}.{member}" if prefix else member
        yield where
        yield from paths(member_schema, defs, prefix=where, seen=seen)
    if isinstance(schema.get("items"), dict):
        yield from paths(schema["items"], defs, prefix=f"{prefix}[]", seen=seen)
    if isinstance(schema.get("additionalProperties"), dict):
        yield from paths(schema["additionalProperties"], defs, prefix=f"{prefix}{{}}", seen=seen)


def event_paths(shapes: Shapes, event_type: str) -> frozenset[str]:
    return frozenset(paths(shapes["$defs"][shapes["events"][event_type]], shapes["$defs"]))


def model_paths(shapes: Shapes, model: str) -> frozenset[str]:
    return frozenset(paths({"$ref": f"#/$defs/{model}"}, shapes["$defs"]))


def whole_models(old: Shapes, new: Shapes) -> frozenset[str]:
    """The models `old`'s readers read whole: every member this release's may hold, theirs may
    hold too (a candidate's reference, a score), so a projection need not walk their values."""
    return frozenset(m for m in old["$defs"] if m in new["$defs"] and model_paths(new, m) <= model_paths(old, m))


def widened(old: Shapes, new: Shapes) -> frozenset[str]:
    """The event types both know whose payloads may now hold a member `old`'s readers do not
    know: those `project` must write for them."""
    return frozenset(t for t in new["events"] if t in old["events"] and event_paths(new, t) - event_paths(old, t))


def changes(old: Shapes, new: Shapes) -> list[str]:
    """What `new` changed from `old`, one line each: event types added or dropped, models
    added or dropped, and each model's fields added, dropped or changed (`JobSpec.output_format
    added`). Whether a model allows members it does not know is not a change of its fields."""
    lines = [f"event type {t} added" for t in sorted(new["events"].keys() - old["events"].keys())]
    lines += [f"event type {t} dropped" for t in sorted(old["events"].keys() - new["events"].keys())]
    old_defs, new_defs = old["$defs"], new["$defs"]
    lines += [f"model {m} added" for m in sorted(new_defs.keys() - old_defs.keys())]
    lines += [f"model {m} dropped" for m in sorted(old_defs.keys() - new_defs.keys())]
    for model in sorted(new_defs.keys() & old_defs.keys()):
        lines += field_changes(model, old=old_defs[model].get("properties", {}), new=new_defs[model].get("properties", {}))
    return lines


def field_changes(model: str, *, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = [f"{model}.{name} added" for name in new if name not in old]
    lines += [f"{model}.{name} dropped" for name in old if name not in new]
    lines += [f"{model}.{name} changed" for name in new if name in old and new[name] != old[name]]
    return lines


if __name__ == "__main__":
    print(json.dumps(current_shapes(), indent=1, sort_keys=True))
