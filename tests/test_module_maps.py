"""Every package's module map (the docstring of its `__init__.py`) names every module and
subpackage in it, so that a reader finds a file from the map (`consumption.py`, `bus/`); a
module added without its line fails here."""

import ast
import re
from pathlib import Path

from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
MAPPED_TREES = ("services", "genline_stack", "genline_cli", "clients/python")
UNMAPPED = {"__init__.py", "__main__.py", "_generated", "migrations", "__pycache__"}


def unmapped_members(root: Path) -> dict[str, list[str]]:
    """For each package under `root`'s MAPPED_TREES, the members its module map does not name."""
    found = {}
    for tree in MAPPED_TREES:
        for init in sorted((root / tree).rglob("__init__.py")):
            package = init.parent
            if UNMAPPED & set(package.relative_to(root).parts):
                continue
            doc = ast.get_docstring(parse(init.read_text())) or ""
            members = [path.name for path in sorted(package.iterdir()) if path.name not in UNMAPPED
                       and (path.suffix == ".py" or (path / "__init__.py").exists())]
            if missing := [name for name in members if not named(name, doc)]:
                found[package.relative_to(root).as_posix()] = missing
    return found


def named(member: str, doc: str) -> bool:
    """`consumption.py` is named by `consumption.py` or `consumption` as a word of its own."""
    stem = member.removesuffix(".py")
    return re.search(rf"(?<![\w.]){re.escape(stem)}(?!\w)", doc) is not None


def test_every_package_maps_every_module_in_it():
    assert unmapped_members(ROOT) == {}


def test_a_module_missing_from_its_map_is_found(tmp_path):
    package = tmp_path / "services" / "shop"
    (package / "carts").mkdir(parents=True)
    (package / "__init__.py").write_text('"""The shop.\n\n    orders.py   what was bought\n"""\n')
    for name in ("orders.py", "order_lines.py", "__main__.py", "carts/__init__.py"):
        (package / name).write_text("")
    assert unmapped_members(tmp_path) == {"services/shop": ["carts", "order_lines.py"]}
