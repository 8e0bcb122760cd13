"""Python source read as syntax trees, for the tests that read the code's shape.

`parse` is `ast.parse` with the cyclic garbage collector held off while it runs. CPython 3.11
keeps the depth count of its conversion of a parsed tree to Python objects in one place for the
whole interpreter and checks, at the end of a conversion, that the count is back where it began.
A conversion that runs Python code half-way (a collection calling a finaliser, which lets another
thread take the interpreter) while that thread converts a tree of its own (3.11's tracebacks parse
the failing line to place their carets, so any thread logging an exception does) ends with
"SystemError: AST constructor recursion depth mismatch": a full-suite run's shape test did, on a
worker whose earlier tests had left threads behind. With no collection a conversion runs start to
end without giving up the interpreter, so its count is its own.
"""

import ast
import gc


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    collecting = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=filename)
    finally:
        if collecting:
            gc.enable()
