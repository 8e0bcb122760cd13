"""Ingest's OpenAPI document as the generated tests read it (tests/e2e/test_seams.py): its
operations, who may call each (public, or the scopes it lists), the ids and URLs each takes in
its path, query or body, and the example body to send. Nothing here names a route: a route
added later is read the same way."""

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
# A request value that names a stored thing: by format, or by name (ids that are not UUIDs).
ID_NAME = re.compile(r"(^|_)(id|ids)$|^(subject|input_upload|move_keys_to|key|n|index)$")
URL_NAME = re.compile(r"(^|_)url$|^issuer$")


@dataclass(frozen=True)
class Field:
    """One value of a request: where it goes (`path`, `query`, `body`), its name, and for a body
    field the keys that lead to it (`images.0.upload_id`)."""

    where: str
    name: str
    route: tuple[str | int, ...] = ()
    siblings_required: tuple[str, ...] = ()  # a body field's: what the object holding it requires

    def __str__(self) -> str:
        return f"{self.where}:{'.'.join(map(str, self.route)) or self.name}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scopes: frozenset[str] | None  # None: anyone may call it (public)
    examples: tuple[Any, ...]  # the JSON bodies the document shows; () without a JSON body
    media_type: str | None
    ids: tuple[Field, ...] = field(default=())
    urls: tuple[Field, ...] = field(default=())

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def example(self) -> Any:
        return self.examples[0] if self.examples else None

    def example_with(self, route: tuple[str | int, ...]) -> Any:
        """The example that holds the most of `route` (a video job's for a field of its video)."""
        def reach(body: Any) -> int:
            depth = 0
            for key in route:
                if isinstance(key, str) and isinstance(body, dict) and key in body:
                    body, depth = body[key], depth + 1
                else:
                    break
            return depth

        return max(self.examples, key=reach, default=None)

    @property
    def stream(self) -> bool:
        return self.path.endswith("/stream")


def resolved(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_fields(document: dict, schema: dict, route: tuple[str | int, ...] = ()) -> Iterator[tuple[Field, dict]]:
    """Every field of a body schema, with its own schema, alternatives and array items included
    (an array's item is reached at index 0)."""
    schema = resolved(document, schema)
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        yield from body_fields(document, alternative, route)
    if schema.get("type") == "array" and "items" in schema:
        yield from body_fields(document, schema["items"], (*route, 0))
    for name, value in schema.get("properties", {}).items():
        yield Field("body", name, (*route, name), tuple(schema.get("required", []))), resolved(document, value)
        yield from body_fields(document, value, (*route, name))


def formats(document: dict, schema: dict) -> set[str]:
    schema = resolved(document, schema)
    found = {schema["format"]} if "format" in schema else set()
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= formats(document, alternative)
    return found


def is_id(document: dict, name: str, schema: dict) -> bool:
    return "uuid" in formats(document, schema) or bool(ID_NAME.search(name))


def examples_of(document: dict, operation: dict) -> tuple[tuple[Any, ...], str | None]:
    content = operation.get("requestBody", {}).get("content", {})
    for media_type, declared in content.items():
        if media_type != "application/json":
            return (), media_type
        schema = resolved(document, declared.get("schema", {}))
        examples = schema.get("examples") or [declared.get("example") or {}]
        return tuple(copy.deepcopy(e) for e in examples), media_type
    return (), None


def read_operations(document: dict) -> list[Operation]:
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            requirements = operation.get("security") or [{}]
            scopes = None if {} in requirements else frozenset(
                next((r["session"] for r in requirements if "session" in r), []))
            ids, urls = [], []
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("path", "query") and is_id(document, parameter["name"], parameter["schema"]):
                    ids.append(Field(parameter["in"], parameter["name"]))
            examples, media_type = examples_of(document, operation)
            if media_type == "application/json":
                schema = operation["requestBody"]["content"][media_type]["schema"]
                for body_field, schema_of_field in body_fields(document, schema):
                    if URL_NAME.search(body_field.name):
                        urls.append(body_field)
                    elif is_id(document, body_field.name, schema_of_field):
                        ids.append(body_field)
            found.append(Operation(method.upper(), path, scopes, examples, media_type, tuple(dict.fromkeys(ids)),
                                   tuple(dict.fromkeys(urls))))
    return found


def set_at(body: Any, route: tuple[str | int, ...], value: Any) -> Any:
    """`body` with `value` at `route`, the containers on the way made as needed; an array's
    first item is replaced by one holding only what leads to `value` (an item is one thing)."""
    if not route:
        return value
    head, rest = route[0], route[1:]
    if isinstance(head, int):
        return [set_at({}, rest, value)]
    container = dict(body) if isinstance(body, dict) else {}
    container[head] = set_at(container.get(head), rest, value)
    return container
