"""One shape for every service, as tested rules: SQL lives only in a store and each service has
the same rooms under the same names; a module over 400 lines is named in a warning.

* SQL is a string literal (an f-string's first part included) that opens, after whitespace,
  with SELECT, INSERT, UPDATE, DELETE, WITH, CREATE, ALTER, LOCK or TRUNCATE and goes on. It
  may sit only in a store (a module `store.py` or a package `store/`), in the bus
  (services/common/bus/, which keeps the outbox and inbox), in services/common/db.py and in
  migrations.
* A Python module of services, genline_stack, genline_cli, bench or the Python client over
  400 lines is named in a warning, not a failure: modules are split by responsibility, and a
  split made only to pass a count reads worse than the long module (services/common/contracts.py,
  the one module of every event type, is not named).
* Each service has `app.py`, `routes.py` or `routes/`, `handlers.py`, `domain.py`, `store.py`
  or `store/`, `settings.py` and `migrations/`, at its top or, for a service grouped by feature,
  in a feature package (one with a routes room of its own: ingest's jobs/ holds the handlers); one that serves gRPC has `grpc.py`, the only
  module of the service that starts the server, and one that has commands has `cli.py`, the
  only module of the service that adds to the `genline` command tree. HTTP routes are
  declared in the routes room (or wired in `app.py`), or in a feature package's own
  (services/ingest/members/routes/), nowhere else.
* The bus's front door (`services.common.bus`) hands services no SQL to splice: nothing it
  exports, nor a public attribute of a class it exports, is SQL. A statement that must carry
  the inbox's claim or an outbox row is handed to the bus (`InboxClaim.first`,
  `staged_event`), which adds its own part.

Each rule is a function of a tree's root, and a test plants a breach in a copy of the tree
to show that the rule sees it.
"""

import ast
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"
GENERATED = "_generated"

SQL_OPENING = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|LOCK|TRUNCATE)\s")
# Where SQL may be written, relative to services/.
SQL_PLACES = ("common/bus/", "common/db.py")

MAX_LINES = 400
SIZED_TREES = ("services", "genline_stack", "genline_cli", "bench", "clients/python")
UNSIZED = {"services/common/contracts.py"}

# A room is one module or package; where two names are given, either will do.
ROUTES_ROOM = ("routes.py", "routes")
ROOMS = (("app.py",), ROUTES_ROOM, ("handlers.py",), ("domain.py",), ("store.py", "store"),
         ("settings.py",), ("migrations",))
GRPC_ROOM = "grpc.py"
GRPC_SERVER = "services.common.grpc_server"
# A service's commands join the one `genline` tree; only a service that has some needs the room.
CLI_ROOM = "cli.py"
COMMAND_TREE = "services.common.cli"
HTTP_DECLARATIONS = {"APIRouter", "Route", "Mount", "WebSocketRoute"}


def python_modules(tree: Path) -> Iterator[Path]:
    for path in sorted(tree.rglob("*.py")):
        if GENERATED not in path.parts and "__pycache__" not in path.parts:
            yield path


def service_packages(services: Path) -> list[Path]:
    return [path for path in sorted(services.iterdir())
            if path.is_dir() and path.name != "common" and (path / "__init__.py").exists()]


# ---- SQL only in stores ----------------------------------------------------------------


def opening_text(node: ast.AST) -> str | None:
    """The text a string literal starts with: the whole of a plain one, an f-string's first part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def sql_lines(source: str) -> list[int]:
    """Lines where a string literal of `source` opens with SQL."""
    return sorted({node.lineno for node in ast.walk(parse(source))
                   if (text := opening_text(node)) is not None and SQL_OPENING.match(text)})


def may_hold_sql(relative: Path) -> bool:
    """`relative`: a module's path under services/."""
    return (relative.name == "store.py" or "store" in relative.parts[:-1] or "migrations" in relative.parts
            or any(relative.as_posix().startswith(place) for place in SQL_PLACES))


def sql_outside_stores(services: Path) -> list[str]:
    """`module:line` of each string of SQL outside the places it may be written."""
    return [f"{path.relative_to(services.parent).as_posix()}:{line}"
            for path in python_modules(services) if not may_hold_sql(path.relative_to(services))
            for line in sql_lines(path.read_text())]


def test_sql_is_written_only_in_stores():
    assert sql_outside_stores(SERVICES) == []


def copy_of_services(tmp_path: Path) -> Path:
    copy = tmp_path / "services"
    shutil.copytree(SERVICES, copy, ignore=shutil.ignore_patterns("__pycache__", GENERATED))
    return copy


def test_sql_planted_outside_a_store_is_found_and_in_a_store_is_not(tmp_path):
    services = copy_of_services(tmp_path)
    domain, store = services / "router" / "domain.py", services / "router" / "store.py"
    planted = '\nSTALE = f"""\n    SELECT id FROM jobs WHERE state = {0}"""\n'
    for module in (domain, store):
        module.write_text(module.read_text() + planted)
    line = len(domain.read_text().splitlines()) - 1  # the f-string opens on the line before its last

    found = sql_outside_stores(services)

    assert f"services/router/domain.py:{line}" in found
    assert not any(place.startswith("services/router/store.py:") for place in found)


def test_words_that_only_look_like_sql_are_not_sql():
    """An HTTP method alone, a sentence in lower case, SQL named inside a sentence."""
    source = 'METHOD = "DELETE"\nNOTE = "select the best"\nWHY = "the SELECT below locks the row"\n'
    assert sql_lines(source) == []
    assert sql_lines('Q = "\\n  WITH last AS (SELECT 1) SELECT * FROM last"\n') == [1]


# ---- modules over 400 lines, named ------------------------------------------------------


def long_modules(root: Path) -> dict[str, int]:
    """Modules over MAX_LINES lines in the SIZED_TREES under `root`, with their line counts."""
    counted = {path.relative_to(root).as_posix(): len(path.read_text().splitlines())
               for tree in SIZED_TREES if (root / tree).is_dir() for path in python_modules(root / tree)}
    return {name: lines for name, lines in counted.items() if lines > MAX_LINES and name not in UNSIZED}


def test_modules_over_400_lines_are_named_in_a_warning():
    if long := long_modules(ROOT):
        warnings.warn(f"modules over {MAX_LINES} lines (split one where it has two responsibilities): "
                      + ", ".join(f"{name} ({lines})" for name, lines in sorted(long.items())), stacklevel=1)


def test_a_module_of_401_lines_is_found(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "long.py").write_text("pass\n" * (MAX_LINES + 1))
    (tmp_path / "bench" / "short.py").write_text("pass\n" * MAX_LINES)
    (tmp_path / "services" / "common").mkdir(parents=True)
    (tmp_path / "services" / "common" / "contracts.py").write_text("pass\n" * (MAX_LINES + 1))
    assert long_modules(tmp_path) == {"bench/long.py": MAX_LINES + 1}


# ---- the rooms of a service ------------------------------------------------------------


def imported_modules(tree: ast.Module) -> set[str]:
    """Modules `tree` imports, and `package.name` for each `from package import name`."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def serves_grpc(tree: ast.Module) -> bool:
    return GRPC_SERVER in imported_modules(tree)


def adds_commands(tree: ast.Module) -> bool:
    return COMMAND_TREE in imported_modules(tree)


def feature_packages(service: Path) -> list[Path]:
    """The service's packages that hold a feature whole: each has a routes room of its own."""
    return [package for package in sorted(service.iterdir()) if (package / "__init__.py").exists()
            and any((package / name).exists() for name in ROUTES_ROOM)]


def missing_rooms(service: Path) -> list[str]:
    places = [service, *feature_packages(service)]
    missing = [" or ".join(names) for names in ROOMS
               if not any((place / name).exists() for place in places for name in names)]
    trees = [parse(path.read_text()) for path in python_modules(service)]
    for room, does_its_work in ((GRPC_ROOM, serves_grpc), (CLI_ROOM, adds_commands)):
        if any(does_its_work(tree) for tree in trees) and not (service / room).exists():
            missing.append(room)
    return missing


def test_every_service_has_every_room():
    missing = {service.name: rooms for service in service_packages(SERVICES) if (rooms := missing_rooms(service))}
    assert missing == {}


def declares_http(tree: ast.Module) -> bool:
    """Whether `tree` declares HTTP routes: it builds an APIRouter or a Starlette route."""
    return any(isinstance(node, ast.Call) and called_name(node.func) in HTTP_DECLARATIONS for node in ast.walk(tree))


def called_name(function: ast.expr) -> str | None:
    if isinstance(function, ast.Name):
        return function.id
    return function.attr if isinstance(function, ast.Attribute) else None


def in_room(service: Path, path: Path, *names: str) -> bool:
    first = path.relative_to(service).parts[0]
    return first in names or first.removesuffix(".py") in names


def in_feature_room(service: Path, path: Path, name: str) -> bool:
    """Whether `path` sits in room `name` of a feature package, a package of the service that
    keeps its own routes and store (services/ingest/members/routes/)."""
    parts = path.relative_to(service).parts
    return len(parts) > 1 and parts[1].removesuffix(".py") == name


def rooms_broken(services: Path) -> list[str]:
    """Modules that do a room's work outside it: declare HTTP routes outside `routes` (and
    `app.py`, which may mount them), start a gRPC server outside `grpc.py`, add commands
    outside `cli.py`."""
    broken = []
    for service in service_packages(services):
        for path in python_modules(service):
            name, tree = path.relative_to(services.parent).as_posix(), parse(path.read_text())
            if not (in_room(service, path, "routes", "app") or in_feature_room(service, path, "routes")) and declares_http(tree):
                broken.append(f"{name}: declares HTTP routes outside routes")
            if not in_room(service, path, "grpc") and serves_grpc(tree):
                broken.append(f"{name}: starts a gRPC server outside grpc.py")
            if not in_room(service, path, "cli") and adds_commands(tree):
                broken.append(f"{name}: adds commands outside cli.py")
    return broken


def test_http_and_grpc_stay_in_their_rooms():
    assert rooms_broken(SERVICES) == []


def test_a_service_without_a_room_or_with_a_room_outside_it_is_found(tmp_path):
    services = copy_of_services(tmp_path)
    (services / "router" / "handlers.py").unlink()
    (services / "ingest" / "jobs" / "handlers.py").unlink()  # its feature package's, the only one
    (services / "router" / "scheduler.py").write_text(
        "from starlette.routing import Route\n\nSTRAY = Route('/stray', None)\n")
    (services / "ingest" / "members" / "stray.py").write_text("from fastapi import APIRouter\n\nSTRAY = APIRouter()\n")
    (services / "ingest" / "members" / "routes" / "kept.py").write_text("from fastapi import APIRouter\n\nKEPT = APIRouter()\n")
    (services / "scorer" / "calibration.py").write_text("from services.common.grpc_server import start_grpc_server\n")
    (services / "scorer" / "cli.py").unlink()
    (services / "scorer" / "offline.py").write_text("from services.common.cli import CommandTree\n")

    assert "handlers.py" in missing_rooms(services / "router")
    assert "handlers.py" in missing_rooms(services / "ingest")
    assert "domain.py" not in missing_rooms(services / "ingest")  # jobs/domain.py
    assert GRPC_ROOM in missing_rooms(services / "scorer")
    assert CLI_ROOM in missing_rooms(services / "scorer")
    assert CLI_ROOM not in missing_rooms(services / "router")  # it has no commands
    broken = rooms_broken(services)
    assert "services/router/scheduler.py: declares HTTP routes outside routes" in broken
    assert "services/ingest/members/stray.py: declares HTTP routes outside routes" in broken
    assert not any(place.startswith("services/ingest/members/routes/") for place in broken)  # a feature's own room
    assert "services/scorer/calibration.py: starts a gRPC server outside grpc.py" in broken
    assert "services/scorer/offline.py: adds commands outside cli.py" in broken


# ---- the bus's front door hands out no SQL --------------------------------------------------


SQL_WORDS = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b")


def is_sql(value: object) -> bool:
    return isinstance(value, str) and SQL_WORDS.search(value) is not None


def sql_handed_out(front_door: object) -> list[str]:
    """The names of what `front_door` exports (`__all__`) that is SQL, or that carries SQL as a
    public attribute of an exported class: a fragment of the bus's SQL for a service to splice."""
    found = []
    for name in front_door.__all__:
        exported = getattr(front_door, name)
        if is_sql(exported):
            found.append(name)
        elif isinstance(exported, type):
            found += [f"{name}.{attribute}" for attribute, value in vars(exported).items()
                      if not attribute.startswith("_") and is_sql(value)]
    return found


def test_the_bus_hands_services_no_sql():
    import services.common.bus as bus

    assert sql_handed_out(bus) == []


def test_a_fragment_of_sql_on_the_front_door_is_found():
    class Claim:
        CLAIMED = "claimed AS (INSERT INTO inbox (event_id) SELECT * FROM unnest(%b) RETURNING event_id)"
        _PRIVATE = "INSERT INTO inbox"

        kind = "interactive"

    front_door = type("FrontDoor", (), {"__all__": ["Claim", "OUTBOX_INSERT", "NAME"], "Claim": Claim,
                                        "OUTBOX_INSERT": "INSERT INTO outbox VALUES (%s)", "NAME": "outbox"})
    assert sql_handed_out(front_door) == ["Claim.CLAIMED", "OUTBOX_INSERT"]


def bus_modules_imported(tree: Path) -> list[str]:
    """`path: module` for each module of the bus (not its front door) a module of `tree`
    imports; for the benchmarks, which are no package the import contracts could name."""
    found = []
    for path in python_modules(tree):
        for node in ast.walk(parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            found += [f"{path.name}: {name}" for name in names if name.startswith("services.common.bus.")]
    return found


def test_the_benchmarks_reach_the_bus_through_its_front_door(tmp_path):
    assert bus_modules_imported(ROOT / "bench") == []
    (tmp_path / "history.py").write_text("from services.common.bus import kafka_admin, envelop\n"
                                         "from services.common.bus.envelope import envelop\n")
    assert bus_modules_imported(tmp_path) == ["history.py: services.common.bus.envelope"]
