"""The plugin hook: dimensions from other packages, through entry points.

A package adds dimensions by declaring entry points in the group
`genline.scorer.dimensions`, each naming a `Dimension` or a callable returning one:

    [project.entry-points."genline.scorer.dimensions"]
    watermark = "acme_scoring:WATERMARK"

A plugin's measure gets the (B, 3, H, W) float RGB batch in [0, 1] (the default
`reads="pixels"`) and returns one value per image; its bounds are defaults that profiles
and rules may override like any other dimension's.
"""

from collections.abc import Iterable
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from services.common.quality.dimensions import Dimension, register_dimension

ENTRY_POINT_GROUP = "genline.scorer.dimensions"


class PluginError(ValueError):
    """An entry point of the group does not give a usable Dimension."""


def load_plugins(found: Iterable[EntryPoint] | None = None) -> list[str]:
    """Register each entry point's dimension; the installed ones when `found` is None."""
    if found is None:
        found = entry_points(group=ENTRY_POINT_GROUP)
    return [_register(entry_point) for entry_point in found]


@cache
def discover_plugins() -> tuple[str, ...]:
    """Load the installed plugins, once per process; a failure is retried next time."""
    return tuple(load_plugins())


def _register(entry_point: EntryPoint) -> str:
    dimension = _resolve(entry_point)
    try:
        return register_dimension(dimension).name
    except ValueError as error:
        raise PluginError(f"scorer plugin {entry_point.name!r}: {error}") from error


def _resolve(entry_point: EntryPoint) -> Dimension:
    where = f"scorer plugin {entry_point.name!r} ({entry_point.value})"
    try:
        target = entry_point.load()
        dimension = target() if callable(target) and not isinstance(target, Dimension) else target
    # A plugin is foreign code: whatever it raises is reported as its failure.
    except Exception as error:
        raise PluginError(f"{where} could not be loaded: {error}") from error
    if not isinstance(dimension, Dimension):
        raise PluginError(f"{where} gave a {type(dimension).__name__}, not a Dimension")
    return dimension
