"""The bus's public module (services/common/bus/__init__.py): each name it exports is the
object of the module it names, and what type checkers read of it is what it exports."""

import ast
import importlib
from pathlib import Path

import pytest

import services.common.bus as bus
from tests.syntax import parse


def test_each_exported_name_is_its_modules_object():
    for name, module in bus.MODULE_OF.items():
        assert getattr(bus, name) is getattr(importlib.import_module(f"services.common.bus.{module}"), name), name


def test_what_type_checkers_read_is_what_it_exports():
    tree = parse(Path(bus.__file__).read_text())
    typed = {(node.module.rsplit(".", 1)[-1], alias.name) for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services.common.bus.")
             for alias in node.names}
    assert typed == {(module, name) for name, module in bus.MODULE_OF.items()}


def test_a_name_it_does_not_export_is_not_found():
    with pytest.raises(AttributeError, match="has no attribute 'OUTBOX_INSERT'"):
        bus.OUTBOX_INSERT  # noqa: B018
