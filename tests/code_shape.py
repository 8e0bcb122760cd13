"""Figures of the code's shape, read from its syntax: `python -m tests.code_shape [ROOT] [-v]`.

* dataclasses: how many; how many are built at exactly one call site, and of those how many
  have no method (a bag that exists for one call);
* positional calls: calls that pass four or more arguments by position (and apart, those into
  the library callees tests/test_calls.py excepts, which take a row of values by position);
* classes defined twice: one class name defined in two modules;
* long functions: functions over 70 lines.

Read over services/, genline_stack/, genline_cli/ and clients/ (generated code and migrations
aside). The rules in tests/test_calls.py are functions of the same readings.
"""

import ast
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
TREES = ("services", "genline_stack", "genline_cli", "clients")
SKIPPED_PARTS = {"_generated", "migrations", "__pycache__", "build"}
MOST_POSITIONAL = 3
LONGEST_FUNCTION = 70


def modules(root: Path) -> Iterator[Path]:
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(path.relative_to(root).parts):
                yield path


@dataclass(frozen=True)
class Parsed:
    path: Path
    tree: ast.Module


def parsed(root: Path) -> list[Parsed]:
    return [Parsed(path, parse(path.read_text(), filename=str(path))) for path in modules(root)]


def is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def has_methods(node: ast.ClassDef) -> bool:
    return any(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) for item in node.body)


@dataclass(frozen=True)
class Shape:
    dataclasses: list[str]
    built_once: list[str]
    built_once_without_methods: list[str]
    positional_calls: list[str]
    positional_excepted: list[str]
    defined_twice: dict[str, list[str]]
    long_functions: list[str]


def shape_of(root: Path) -> Shape:
    files = parsed(root)
    dataclasses: dict[str, ast.ClassDef] = {}  # by `path:line name`: two classes of one name count twice
    classes: defaultdict[str, list[str]] = defaultdict(list)
    calls: Counter[str] = Counter()
    from tests.test_calls import POSITIONAL_CALLEES  # here: test_calls reads this module's readings

    positional, excepted, long_functions = [], [], []
    for file in files:
        relative = file.path.relative_to(root)
        for node in ast.walk(file.tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name].append(str(relative))
                if is_dataclass(node):
                    dataclasses[f"{relative}:{node.lineno} {node.name}"] = node
            elif isinstance(node, ast.Call):
                name = called_name(node)
                if name:
                    calls[name] += 1
                plain = [arg for arg in node.args if not isinstance(arg, ast.Starred)]
                if len(plain) > MOST_POSITIONAL:
                    found = excepted if name in POSITIONAL_CALLEES else positional
                    found.append(f"{relative}:{node.lineno} {name or '?'}({len(plain)} by position)")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LONGEST_FUNCTION:
                    long_functions.append(f"{relative}:{node.lineno} {node.name} ({length} lines)")
    # A call is known by its callee's name only: a name two dataclasses share counts both's calls.
    once = sorted(place for place, node in dataclasses.items() if calls[node.name] == 1)
    return Shape(
        dataclasses=sorted(dataclasses),
        built_once=once,
        built_once_without_methods=[place for place in once if not has_methods(dataclasses[place])],
        positional_calls=positional,
        positional_excepted=excepted,
        defined_twice={name: paths for name, paths in sorted(classes.items()) if len(set(paths)) > 1},
        long_functions=long_functions,
    )


def report(shape: Shape) -> list[str]:
    return [
        f"dataclasses: {len(shape.dataclasses)}",
        f"dataclasses built at one call site: {len(shape.built_once)}"
        f" ({len(shape.built_once_without_methods)} of them without a method)",
        f"calls with {MOST_POSITIONAL + 1}+ arguments by position: {len(shape.positional_calls)}"
        f" (and {len(shape.positional_excepted)} into library callees that take a row by position)",
        f"class names defined twice: {len(shape.defined_twice)}",
        f"functions over {LONGEST_FUNCTION} lines: {len(shape.long_functions)}",
    ]


def main(argv: list[str]) -> int:
    roots = [arg for arg in argv if not arg.startswith("-")]
    root = Path(roots[0]).resolve() if roots else ROOT
    shape = shape_of(root)
    verbose = "-v" in argv
    for line in report(shape):
        print(line)
    if verbose:
        for title, rows in (("positional calls", shape.positional_calls), ("long functions", shape.long_functions),
                            ("built once without a method", shape.built_once_without_methods),
                            ("defined twice", [f"{name}: {', '.join(paths)}" for name, paths in
                                               shape.defined_twice.items()])):
            print(f"\n{title}:")
            print("\n".join(f"  {row}" for row in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
