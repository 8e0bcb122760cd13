"""What every Genline HTTP API keeps to, so that its OpenAPI document says exactly what it does.

1. Strict input: request bodies derive from `RequestModel`, which refuses unknown fields,
   numbers and booleans sent as strings, and text PostgreSQL cannot store (U+0000, unpaired
   surrogates), naming the field (422). Every value outside the body (path, query, header,
   cookie), declared by the route or read by it, is held to the same and to a length bound
   before any route runs (`refuse_unstorable_values`).
2. Errors are problems: FastAPI's default 422 schema is replaced by the shared Problem
   schema, every error status is filed under `application/problem+json`, and an operation
   behind a security scheme declares its 401 (its 403 when it lists scopes, its 429 when
   it takes an API key, whose plan limits the rate). A route declares its other statuses with
   `problems.responses(...)`.
3. Operation ids are the route functions' names; every response names its `X-Request-ID`.

`create_app` wires all of this, so a route added later is documented the same way.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from services.common import problems, telemetry

CONTACT = {"name": "the operators of this Genline deployment"}
LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
_UNSTORABLE = {0: "U+0000 (NUL)"}


def unstorable_character(text: str) -> str | None:
    """The first character PostgreSQL cannot keep in text or jsonb, described, or None."""
    for char in text:
        code = ord(char)
        if code == 0:
            return _UNSTORABLE[0]
        if 0xD800 <= code <= 0xDFFF:  # half of a surrogate pair: not encodable as UTF-8
            return f"U+{code:04X} (an unpaired surrogate)"
    return None


def _check_storable(value: Any) -> None:
    if isinstance(value, str):
        if found := unstorable_character(value):
            raise PydanticCustomError("unstorable_text", "contains {found}, which cannot be stored", {"found": found})
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_storable(item)


RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _text_only(value: Any) -> Any:
    # A query parameter is always text, and lax parsing would read "0.5" as a Unix time.
    if not isinstance(value, str) or not RFC3339_START.match(value):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string")
    return value


# FastAPI validates a body as Python objects, where a date-time can only arrive as a string;
# strict mode would refuse that string, lax mode would also take a number. RFC 3339 needs the offset.
Timestamp = Annotated[AwareDatetime, Field(strict=False), BeforeValidator(_text_only)]


def _storable_text(value: str) -> str:
    _check_storable(value)
    return value


# For text taken outside a body (query, path): the same refusal, naming the parameter.
StorableText = Annotated[str, AfterValidator(_storable_text)]


# Bounds on every value a request carries outside its body, whether or not a route declares it
# (a route reads a cookie or a header itself; its own declared bounds are tighter). Past them, or
# with text PostgreSQL cannot keep, the request is refused before any route or query sees it.
VALUE_LIMITS = {"path": 1024, "query": 4096, "header": 8192, "cookie": 4096}


def request_values(request: Request) -> Iterator[tuple[str, str, str]]:
    """(where, name, value) of every value a request carries outside its body."""
    yield from (("path", name, str(value)) for name, value in request.path_params.items())
    yield from (("query", name, value) for name, value in request.query_params.multi_items())
    yield from (("header", name, value) for name, value in request.headers.items())
    yield from (("cookie", name, value) for name, value in request.cookies.items())


def value_error(where: str, name: str, *, value: str) -> dict[str, Any] | None:
    if found := unstorable_character(value):
        return {"loc": (where, name), "msg": f"contains {found}, which cannot be stored", "type": "unstorable_text"}
    if len(value) > VALUE_LIMITS[where]:
        return {"loc": (where, name), "msg": f"is longer than {VALUE_LIMITS[where]} characters",
                "type": "string_too_long"}
    return None


async def refuse_unstorable_values(request: Request) -> None:
    """Every route's first dependency: a value it could hand to the database unchecked is a 422."""
    errors = [error for where, name, value in request_values(request)
              if (error := value_error(where, name, value=value)) is not None]
    if errors:
        raise RequestValidationError(errors)


class RequestModel(BaseModel):
    """A request body: JSON types as sent (no "5" for 5, no "yes" for true), no unknown
    fields, and only text that can be stored. Date-times are `Timestamp`s."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _storable(cls, value: Any, _: ValidationInfo) -> Any:
        _check_storable(value)
        return value


def operation_id(route: APIRoute) -> str:
    return route.name


@dataclass(frozen=True, kw_only=True)
class Described:
    """How a service's API document presents it; `swagger_url`: where FastAPI's interactive
    explorer answers."""

    title: str
    description: str
    tags: list[dict[str, Any]]
    version: str = "1.0"
    swagger_url: str = "/docs"


def create_app(service: str, described: Described, *, lifespan: Any) -> FastAPI:
    """A service's FastAPI app: problems for every error, traced requests, and a document
    that declares them."""
    app = FastAPI(title=described.title, description=described.description, version=described.version,
                  contact=CONTACT, license_info=LICENSE, openapi_tags=described.tags, lifespan=lifespan,
                  generate_unique_id_function=operation_id, docs_url=described.swagger_url,
                  dependencies=[Depends(refuse_unstorable_values)])
    problems.install(app)
    telemetry.instrument_http(app, service)
    app.openapi = lambda: _document(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                               summary=app.summary, description=app.description, routes=app.routes,
                               tags=app.openapi_tags, contact=app.contact, license_info=app.license_info,
                               separate_input_output_schemas=app.separate_input_output_schemas)
        app.openapi_schema = declare_problems(document, problems.error_shapes(app))
    return app.openapi_schema


def declare_problems(document: dict[str, Any], shapes: tuple[problems.ErrorShape, ...] = ()) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    problem = problems.ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    seen: set[str] = set()
    for path in document.get("paths", {}).values():
        for operation in path.values():
            if operation["operationId"] in seen:
                raise RuntimeError(f"two operations are named {operation['operationId']!r}")
            seen.add(operation["operationId"])
            _declare_operation_problems(operation)
    for shape in shapes:
        schema = dict(shape.schema)
        schemas.update(schema.pop("$defs", {}))
        schemas[shape.name] = schema
        for path in (p for p in document.get("paths", {}) if shape.covers(p)):
            for operation in document["paths"][path].values():
                _declare_shaped_errors(operation, shape)
    return document


def _declare_shaped_errors(operation: dict[str, Any], shape: problems.ErrorShape) -> None:
    """An operation whose errors another API's shape answers (problems.ErrorShape) declares them so."""
    responses = operation["responses"]
    if "422" in responses:  # the shape answers a request its schema refuses as its own status (400)
        responses.setdefault("400", _problem(400))
    if "429" in responses:  # a shape may answer 429 for what no wait cures (OpenAI's insufficient_quota)
        responses["429"] = {**responses["429"], "headers": {
            **responses["429"].get("headers", {}), "Retry-After": {**RATE_LIMIT_HEADERS["Retry-After"],
                                                                   "required": False}}}
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape.name}"}}}
            response.setdefault("headers", {})["X-Request-ID"] = {
                "description": "the request's id: the one sent, when usable, else a new one", "required": True,
                "schema": {"type": "string"}}


def _declare_operation_problems(operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    # FastAPI's own, for routes with parameters or a body; and any request's cookie or header
    # that cannot be stored (refuse_unstorable_values).
    responses["422"] = _problem(422)
    if operation.get("security"):
        responses.setdefault("401", _problem(401))
    if any(scopes for requirement in operation.get("security", []) for scopes in requirement.values()):
        responses.setdefault("403", _problem(403))  # a key without the scope the operation lists
    if any(RATE_LIMITED_SCHEME in requirement for requirement in operation.get("security", [])):
        responses["429"] = _problem(429) | {"headers": dict(RATE_LIMIT_HEADERS)}
    if "requestBody" in operation:  # a body that is not UTF-8 cannot even be parsed
        responses.setdefault("400", _problem(400))
    # Any operation may meet its database away (a restart, a failover): 503, with Retry-After.
    responses.setdefault("503", _problem(503))
    responses["503"].setdefault("headers", {})["Retry-After"] = {
        "description": "seconds to wait before trying again, when the service knows", "required": False,
        "schema": {"type": "integer", "minimum": 0}}
    for status, response in responses.items():
        if int(status) >= 400:
            declared = response.get("content", {}).get(problems.MEDIA_TYPE, {})
            examples = {"examples": declared["examples"]} if "examples" in declared else {}
            response["content"] = {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}} | examples}
        response.setdefault("headers", {})["X-Request-ID"] = {
            "description": "the request's id: the one sent, when usable, else a new one", "required": True,
            "schema": {"type": "string"}}


# Requests with an API key count against its tenant's plan (ingest): beyond it, 429 with these.
RATE_LIMITED_SCHEME = "apiKey"
RATE_LIMIT_HEADERS = {
    name: {"description": description, "required": name == "Retry-After", "schema": {"type": "integer", "minimum": 0}}
    for name, description in (
        ("Retry-After", "seconds to wait before trying again"),
        ("RateLimit-Limit", "requests the plan allows at once (its burst)"),
        ("RateLimit-Remaining", "requests allowed right now"),
        ("RateLimit-Reset", "seconds until the allowance is whole again (with the two above, on a refused rate)"))}


def _problem(status: int) -> dict[str, Any]:
    return {"description": problems.TITLES[status], "content": {}}
