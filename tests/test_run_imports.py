"""What the product imports is what the run set installs: every third-party module that a file of
services/, genline_stack/ or genline_cli/ imports comes from a package of requirements/run.lock
(torch from its own pin), and every one the Python client imports from a package the client's
own pyproject.toml requires. `make run` installs the run set alone, so an import from the test set
fails a newcomer's first command while every test still passes."""

import ast
import functools
import importlib.metadata
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.syntax import parse
from tests.test_lock import pins

ROOT = Path(__file__).resolve().parents[1]
# `genline` is the package of the gRPC stubs generated from proto/ (services/common/_generated).
FIRST_PARTY = {"services", "genline_stack", "genline_cli", "genline_client", "genline"}
# Installed on its own, its CPU build pinned in the Makefile (requirements/torch-cpu.txt).
APART = {"torch"}
# Modules only type checkers know (imported under `if TYPE_CHECKING:`), never at run time.
TYPING_ONLY = {"_typeshed"}
CLIENT = ROOT / "clients" / "python"


def third_party_imports(folder: Path, *, root: Path) -> Iterator[tuple[str, str]]:
    """(top-level module, importing file) for each absolute import of a module outside the
    standard library and the project, wherever it stands in the file (in a function too)."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(parse(path.read_text(), filename=str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top not in FIRST_PARTY | TYPING_ONLY and top not in sys.stdlib_module_names and top != "__future__":
                    yield top, str(path.relative_to(root))


@functools.cache
def installed() -> dict[str, set[str]]:
    """Top-level module -> distributions, from the files each distribution installed as well as
    its top_level.txt, which some wheels get wrong (dlib-bin's names only its extension module)."""
    found: dict[str, set[str]] = {}
    for distribution in importlib.metadata.distributions():
        tops = set((distribution.read_text("top_level.txt") or "").split())
        tops |= {file.parts[0].split(".")[0] for file in distribution.files or []
                 if file.suffix in (".py", ".so") or len(file.parts) > 1 and file.parts[1] == "__init__.py"}
        for top in tops:
            found.setdefault(top, set()).add(distribution.metadata["Name"])
    return found


def providers_of(module: str) -> set[str]:
    """The installed distributions that provide a top-level module (none: it is not installed)."""
    return {canonicalize_name(d) for d in installed().get(module, [])}


def missing(folders: list[Path], allowed: set[str], *, root: Path = ROOT) -> list[str]:
    found = []
    for folder in folders:
        for module, importer in third_party_imports(folder, root=root):
            distributions = providers_of(module)
            if not distributions & allowed:
                where = ", ".join(sorted(distributions)) or "no installed package"
                found.append(f"{importer} imports {module} ({where}), which the run set does not install")
    return sorted(set(found))


def test_every_module_the_platform_imports_comes_from_the_run_set():
    allowed = set(pins("run.lock")) | APART
    assert missing([ROOT / "services", ROOT / "genline_stack", ROOT / "genline_cli"], allowed) == []


def test_every_module_the_client_imports_comes_from_its_own_requirements():
    declared = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]["dependencies"]
    allowed = {canonicalize_name(Requirement(r).name) for r in declared}
    assert missing([CLIENT / "genline_client"], allowed) == []


def test_an_import_from_the_test_set_is_named_with_its_importer(tmp_path):
    (tmp_path / "demo.py").write_text("def photo():\n    from matplotlib import cbook\n    return cbook\n")
    assert missing([tmp_path], set(pins("run.lock")), root=tmp_path) == [
        "demo.py imports matplotlib (matplotlib), which the run set does not install"]
