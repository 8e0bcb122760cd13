"""No import circle anywhere in the house: between the modules of services/, genline_stack/,
genline_cli/ and the client, no module reaches itself again through what it imports, at run
time or for the type checker alone (`if TYPE_CHECKING:`). A circle means two modules that can
only be read together; the habit instead is to move the shared piece down a floor, or to pass a
resource its client rather than import the client back (../STYLE.md: no circles)."""

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
TREES = {ROOT / "services": "services", ROOT / "genline_stack": "genline_stack", ROOT / "genline_cli": "genline_cli",
         ROOT / "clients" / "python" / "genline_client": "genline_client"}


def modules_of(tree: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in tree.rglob("*.py"):
        if "_generated" in path.parts:
            continue
        parts = [package, *path.relative_to(tree).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(path: Path, module: str, known: set[str]) -> Iterator[str]:
    """The project's modules `module` (the file at `path`) imports, by name, however deep in it."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b` imports the module a.b where there is one, else a name of a's.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `from a.b import c`: the module a.b.c, else a.b
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def import_graph(trees: dict[Path, str]) -> dict[str, set[str]]:
    modules = {name: path for tree, package in trees.items() for name, path in modules_of(tree, package).items()}
    return {name: set(imported(path, name, set(modules))) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_house_imports_itself_back():
    assert circles(import_graph(TREES)) == []


def test_a_circle_is_found_and_named_whatever_kind_of_import_closes_it(tmp_path):
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "client.py").write_text("from shop import orders\n")
    (package / "orders.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .client import Client\n")
    (package / "prices.py").write_text("import shop.orders\n")

    assert circles(import_graph({package: "shop"})) == [["shop.client", "shop.orders"]]
