"""The conventions every HTTP API gets from services.common.api, on a small app served
in-process: problems declared for any route, request ids through an unhandled error."""

import json
import logging
from typing import Annotated

import pytest
from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPBearer
from fastapi.testclient import TestClient

from services.common import api, telemetry

HEADER = "X-Request-ID"

bearer = HTTPBearer(scheme_name="apiKey", auto_error=False)


class Note(api.RequestModel):
    text: str
    count: int = 1


def small_app(*routers: APIRouter):
    app = api.create_app("test", api.Described(title="t", description="d", tags=[]), lifespan=None)
    for router in routers:
        app.include_router(router)
    return app


def notes_router() -> APIRouter:
    router = APIRouter()

    @router.post("/notes", status_code=201)
    async def add_note(note: Note, _: Annotated[object, Security(bearer)]) -> Note:
        return note

    @router.get("/boom")
    async def explode() -> dict:
        raise RuntimeError("the disk is on fire")

    return router


def test_a_route_that_declares_nothing_still_declares_its_problems():
    operation = small_app(notes_router()).openapi()["paths"]["/notes"]["post"]
    assert operation["operationId"] == "add_note" and operation["security"] == [{"apiKey": []}]
    for status in ("400", "401", "422"):
        assert operation["responses"][status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert operation["responses"]["201"]["headers"][HEADER]["required"] is True


def test_the_default_validation_error_schema_is_gone():
    schemas = small_app(notes_router()).openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert {"type", "title", "status", "detail", "instance", "request_id", "errors"} <= schemas["Problem"]["properties"].keys()


@pytest.mark.filterwarnings("ignore:Duplicate Operation ID")
def test_two_operations_of_one_name_are_refused():
    first, second = APIRouter(), APIRouter()
    first.get("/a", name="same")(lambda: None)
    second.get("/b", name="same")(lambda: None)
    with pytest.raises(RuntimeError, match="two operations are named"):
        small_app(first, second).openapi()


class JsonLines(logging.Handler):
    """Log lines as the services write them, formatted when emitted (in the request's context)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(telemetry.JsonFormatter("test"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines():
    handler, root = JsonLines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_an_unhandled_error_is_a_problem_naming_the_request_in_body_header_and_log(log_lines):
    client = TestClient(small_app(notes_router()), raise_server_exceptions=False)
    response = client.get("/boom", headers={HEADER: "req-42"})
    assert response.status_code == 500 and response.headers["content-type"] == "application/problem+json"
    assert response.headers[HEADER] == "req-42" and response.json()["request_id"] == "req-42"
    [error] = [line for line in log_lines if line["level"] == "ERROR"]
    assert error["request_id"] == "req-42" and "the disk is on fire" in error["exc"]
    [access] = [line for line in log_lines if line["logger"] == "genline.access"]
    assert access["request_id"] == "req-42" and access["status"] == 500


def echo_router(seen: list[str]) -> APIRouter:
    """A route that would hand every value it reads to the database (here: `seen`)."""
    router = APIRouter()

    @router.get("/things/{name}")
    async def read_thing(name: str, request: Request, state: str = "") -> dict:
        seen.extend([name, state, request.headers.get("user-agent", ""), *request.cookies.values()])
        return {}

    @router.get("/me")
    async def who(request: Request) -> dict:  # takes no parameter: reads a cookie and a header itself
        seen.extend([request.cookies.get("session", ""), request.headers.get("user-agent", "")])
        return {}

    return router


@pytest.mark.parametrize(("path", "headers", "field"), [
    ("/things/x?state=%00abc", {}, "query.state"),  # a sign-in callback's state, say
    ("/things/a%00b", {}, "path.name"),
    ("/me", {"Cookie": 'session="\\000"'}, "cookie.session"),  # a quoted cookie's escape is a NUL
    ("/things/x?state=" + "s" * 5000, {}, "query.state"),
    ("/me", {"Cookie": "session=" + "c" * 5000}, "cookie.session"),
    ("/me", {"User-Agent": "u" * 9000}, "header.user-agent"),
])
def test_a_value_outside_the_body_that_cannot_be_stored_or_is_too_long_is_refused_before_any_route(path, headers,
                                                                                                   field):
    seen: list[str] = []
    client = TestClient(small_app(echo_router(seen)), raise_server_exceptions=False)
    response = client.get(path, headers=headers)
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field], response.text
    assert not seen  # nothing reached the route


def test_every_operation_declares_the_refusal_of_its_values():
    document = small_app(echo_router([])).openapi()
    assert document["paths"]["/me"]["get"]["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
