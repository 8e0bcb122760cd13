"""Things are named at the call site: a reader of a call sees what each argument is, and a swap
of two adjacent ints or keys is a type error or a wrong keyword, never a silent mistake.

* Signatures: past its first two parameters (`self` and `cls` aside) a function's parameters
  are keyword-only (`*`). Not checked: dunder methods other than `__init__` (Python calls
  them by position), FastAPI route handlers (FastAPI calls them by keyword; their parameters
  are the HTTP contract), the public methods and constructors of the Python client (clients/python: users call
  them as they are documented; what works today keeps working), and the few functions in
  `POSITIONAL_BY_CONTRACT`, which a library or a typed callback calls by position.
* Dataclasses: one with more than three fields is `kw_only=True`.
* Calls: no call passes four or more arguments by position, except into the callees in
  `POSITIONAL_CALLEES`: library functions that take a row of values by position only.

Read over services/, genline_stack/, genline_cli/ and clients/ (generated code and migrations
aside), with the readings of tests/code_shape.py. Each rule is a function of a tree's root,
and a test plants a breach to show that the rule sees it.
"""

import ast
from pathlib import Path

from tests.code_shape import MOST_POSITIONAL, called_name, is_dataclass, modules
from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
MOST_BEFORE_STAR = 2
MOST_FIELDS_BY_POSITION = 3
BOUND = {"self", "cls", "mcs"}
HTTP_VERBS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route", "websocket"}
CLIENT = Path("clients")

# Callees whose arguments are one row of values, taken by position only.
POSITIONAL_CALLEES = {
    # logging's printf-style arguments: the message's placeholders in order
    "debug", "info", "warning", "error", "exception", "critical", "log",
    "pack_into",  # struct: the values of a binary layout, in the layout's order
    "reshape", "transpose", "permute", "view",  # numpy / torch: the axes, in order
    # OpenCV's C++-shaped functions (positional in their stubs)
    "rectangle", "grabCut", "addWeighted", "Sobel", "bilateralFilter", "findHomography",
    "calcOpticalFlowFarneback",
    "Table", "add_row", "Progress",  # rich: a table's columns, a row's cells, a progress bar's columns
    "labels",  # prometheus_client: label values in the order the metric declares them
    "AliasChoices",  # pydantic: the environment names a setting is read from
    "FetchRequest",  # kafka_admin: the Kafka protocol's request fields, in the wire's order
    "C2paSignerInfo", "sign",  # c2pa's signer: its fields by position (a ctypes structure)
    "construct_event",  # stripe: payload, signature header, secret, tolerance
    # services.common.problems: a list of statuses (`responses(*statuses)`), one status
    # described by several bodies (`shown`, `stream_responses`)
    "responses", "shown", "stream_responses",
    "write_partitions",  # the journal's rows and its conflict columns (`*on_conflict`)
    "_unit_draw",  # a seed's parts, hashed in order (`*parts`)
}

# Functions called by position by a library or a typed callback, `path:name`.
POSITIONAL_BY_CONTRACT = {
    # selectors.BaseSelector.register(fileobj, events, data): the loop calls it by position
    "services/router/clock.py:register",
    # a BatchHandler: the consumer calls it with (conn, claim, publish)
    "services/ledger/service.py:apply_events",
    "services/ingest/jobs/handlers.py:project_batch",
    # services.common.runtime.build calls its `register` with (consumer, objects, settings)
    "services/scorer/app.py:register",
    "services/delivery/app.py:register",
    # stands in for aiokafka's Fetcher._proc_fetch_request(assignment, node_id, request)
    "services/common/bus/wake.py:fetch_and_see",
    # grpc.aio's client interceptors: grpc calls them with (continuation, details, request)
    "services/common/internal_calls.py:intercept_unary_unary",
    "services/common/internal_calls.py:intercept_unary_stream",
    "services/common/internal_calls.py:intercept_stream_unary",
    "services/common/internal_calls.py:intercept_stream_stream",
    # a ProcessPoolExecutor's initializer: the pool calls it with its initargs, by position
    "services/delivery/rendering.py:start_worker",
}


def _is_route(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
               and decorator.func.attr in HTTP_VERBS for decorator in function.decorator_list)


def _is_public_client(relative: Path, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return (relative.parts[0] == CLIENT.name and not relative.name.startswith("_")
            and (not function.name.startswith("_") or function.name == "__init__"))


def _positional(function: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> list[str]:
    arguments = function.args
    if arguments.vararg is not None:
        return []  # everything after `*args` is keyword-only already
    named = [argument.arg for argument in [*arguments.posonlyargs, *arguments.args]]
    if method and named and named[0] in BOUND:
        named = named[1:]
    return named


def _exempt(relative: Path, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    dunder = function.name.startswith("__") and function.name != "__init__"
    return (dunder or _is_route(function) or _is_public_client(relative, function)
            or f"{relative}:{function.name}" in POSITIONAL_BY_CONTRACT)


def _functions(tree: ast.AST) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Each function of a module, and whether it is defined in a class's body."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append((child, isinstance(node, ast.ClassDef)))
    return found


def unnamed_parameters(root: Path) -> list[str]:
    """`path:line name(parameters)` for each function with a third positional parameter."""
    found = []
    for path in modules(root):
        relative = path.relative_to(root)
        for function, method in _functions(parse(path.read_text(), filename=str(path))):
            positional = _positional(function, method=method)
            if len(positional) > MOST_BEFORE_STAR and not _exempt(relative, function):
                found.append(f"{relative}:{function.lineno} {function.name}({', '.join(positional)})")
    return found


def _fields(node: ast.ClassDef) -> int:
    return sum(1 for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
               and "ClassVar" not in ast.unparse(item.annotation))


def _kw_only(node: ast.ClassDef) -> bool:
    return any(isinstance(decorator, ast.Call) and any(keyword.arg == "kw_only" for keyword in decorator.keywords)
               for decorator in node.decorator_list)


def positional_dataclasses(root: Path) -> list[str]:
    """`path:line name` for each dataclass of more than three fields built by position."""
    found = []
    for path in modules(root):
        for node in ast.walk(parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.ClassDef) and is_dataclass(node) and _fields(node) > MOST_FIELDS_BY_POSITION
                    and not _kw_only(node)):
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def positional_calls(root: Path) -> list[str]:
    """`path:line name(n by position)` for each call of four or more arguments by position."""
    found = []
    for path in modules(root):
        for node in ast.walk(parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                plain = [argument for argument in node.args if not isinstance(argument, ast.Starred)]
                name = called_name(node)
                if len(plain) > MOST_POSITIONAL and name not in POSITIONAL_CALLEES:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {name or '?'}({len(plain)} by position)")
    return found


def test_parameters_past_the_second_are_keyword_only() -> None:
    unnamed = unnamed_parameters(ROOT)
    assert not unnamed, f"{len(unnamed)} functions take a third parameter by position:\n" + "\n".join(unnamed)


def test_dataclasses_of_more_than_three_fields_are_built_by_keyword() -> None:
    loose = positional_dataclasses(ROOT)
    assert not loose, f"{len(loose)} dataclasses are not kw_only:\n" + "\n".join(loose)


def test_no_call_passes_four_arguments_by_position() -> None:
    calls = positional_calls(ROOT)
    assert not calls, f"{len(calls)} calls pass four or more arguments by position:\n" + "\n".join(calls)


def _tree(tmp_path: Path, source: str, *, at: str = "services/ledger/domain.py") -> Path:
    module = tmp_path / at
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(source)
    return tmp_path


def test_a_third_positional_parameter_is_seen(tmp_path: Path) -> None:
    root = _tree(tmp_path, "def grant(conn, tenant_id, amount, *, source):\n    return amount\n\n"
                           "class Book:\n    def grant(self, tenant_id, amount, source):\n        return amount\n\n"
                           "    def named(self, tenant_id, amount, *, source):\n        return amount\n\n"
                           "def spread(first, *rest, last):\n    return rest\n")
    assert [row.split(" ", 1)[1] for row in unnamed_parameters(root)] == [
        "grant(conn, tenant_id, amount)", "grant(tenant_id, amount, source)"]


def test_dunders_routes_and_the_public_client_keep_their_signatures(tmp_path: Path) -> None:
    _tree(tmp_path, "class Guard:\n    def __exit__(self, kind, error, trace):\n        return None\n\n"
                    "@router.get('/v1/jobs')\nasync def list_jobs(tenant, state, after, limit):\n    return []\n",
          at="services/ingest/routes/jobs.py")
    _tree(tmp_path, "class Genline:\n    def set_auto_topup(self, below, pack, max_per_month):\n        return None\n\n"
                    "    def _sent(self, method, path, body):\n        return None\n",
          at="clients/python/genline_client/sync.py")
    assert [row.split(" ", 1)[1] for row in unnamed_parameters(tmp_path)] == ["_sent(method, path, body)"]


def test_a_dataclass_of_four_fields_built_by_position_is_seen(tmp_path: Path) -> None:
    root = _tree(tmp_path, "from dataclasses import dataclass\n\n"
                           "@dataclass(frozen=True)\nclass Transfer:\n    a: int\n    b: int\n    c: int\n    d: int\n\n"
                           "@dataclass(frozen=True, kw_only=True)\nclass Named:\n    a: int\n    b: int\n    c: int\n    d: int\n\n"
                           "@dataclass\nclass Small:\n    a: int\n    b: int\n    c: int\n")
    assert [row.split(" ", 1)[1] for row in positional_dataclasses(root)] == ["Transfer"]


def test_a_fourth_argument_by_position_is_seen(tmp_path: Path) -> None:
    root = _tree(tmp_path, "Transfer(job_id, tenant_id, amount, unit_price)\n"
                           "Transfer(job_id, tenant_id, amount=amount, unit_price=unit_price)\n"
                           "log.warning('%s %s %s', job_id, tenant_id, amount)\n"
                           "spread(*rows)\n")
    assert [row.split(" ", 1)[1] for row in positional_calls(root)] == ["Transfer(4 by position)"]
