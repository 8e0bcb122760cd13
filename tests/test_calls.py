"""Calls carry at most three things: a function that needs more takes them as one typed object
(a frozen dataclass or a pydantic model), so a value followed through the code keeps its name
and its type instead of a place in a row of arguments.

* Counted: every parameter of a function or method of services/ (generated code and
  migrations aside) and genline_stack/, keyword-only ones and ones with defaults included,
  `*args` and `**kwargs` included.
* Not counted: `self`, `cls`, and `conn`, the open transaction a store function runs in (the
  room it runs in, not a thing it is told).
* Not checked: FastAPI route handlers (a function under `@router.get(...)` and the like),
  whose parameters are the HTTP contract FastAPI reads to build the OpenAPI document.

The rule is a function of a tree's root, and a test plants a breach in a copy of the tree to
show that the rule sees it.
"""

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("services", "genline_stack")
SKIPPED_PARTS = {"_generated", "migrations", "__pycache__"}
MOST = 3
NOT_THINGS = {"self", "cls", "conn"}
HTTP_VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "websocket"}


def modules(root: Path) -> Iterator[Path]:
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(path.parts):
                yield path


def is_route(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
               and decorator.func.attr in HTTP_VERBS for decorator in function.decorator_list)


def things(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    arguments = function.args
    named = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    rest = [argument for argument in (arguments.vararg, arguments.kwarg) if argument is not None]
    return [argument.arg for argument in [*named, *rest] if argument.arg not in NOT_THINGS]


def loose_calls(root: Path) -> list[str]:
    """`path:line name(things)` for each function of the trees that takes more than three."""
    found = []
    for path in modules(root):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not is_route(node):
                carried = things(node)
                if len(carried) > MOST:
                    found.append(f"{path.relative_to(root)}:{node.lineno} "
                                 f"{node.name}({', '.join(carried)})")
    return found


def test_no_call_carries_more_than_three_things() -> None:
    loose = loose_calls(ROOT)
    assert not loose, f"{len(loose)} functions take more than {MOST} things:\n" + "\n".join(loose)


def test_a_fourth_thing_is_seen(tmp_path: Path) -> None:
    for tree in TREES:
        shutil.copytree(ROOT / tree, tmp_path / tree,
                        ignore=shutil.ignore_patterns("__pycache__", "_generated"))
    before = set(loose_calls(tmp_path))
    planted = tmp_path / "services" / "ledger" / "domain.py"
    planted.write_text(planted.read_text() + "\n\ndef grant(conn, tenant_id, amount, source, reason):\n"
                       "    return tenant_id, amount, source, reason\n")
    assert [line.split(" ", 1)[1] for line in set(loose_calls(tmp_path)) - before] == [
        "grant(tenant_id, amount, source, reason)"]


def test_the_room_and_a_route_are_not_things(tmp_path: Path) -> None:
    module = tmp_path / "services" / "ingest" / "store.py"
    module.parent.mkdir(parents=True)
    (tmp_path / "genline_stack").mkdir()
    module.write_text(
        "async def write(conn, job_id, tenant_id, spec):\n    return job_id\n\n"
        "@router.get('/v1/jobs')\nasync def list_jobs(tenant, state, after, limit, request):\n"
        "    return []\n")
    assert loose_calls(tmp_path) == []
