"""Which style each candidate of an order across styles is made in (DESIGN.md §13), without I/O.

Candidate `i` of a job is made in style `styles[i % S]`: the first attempt spreads its N
candidates evenly. A rework that says what each style still misses (`needed_by_style`) asks
only for those: its candidates cycle through a pattern with each missing style as often as it
misses images (3 of "studio", 2 of "window": studio, studio, studio, window, window, studio, …),
so however many candidates the engine plans, they are shared in the proportions missed, and
neighbouring indices share a style (a hosted model makes one style per call).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.common.contracts import StyleSpec


@dataclass(frozen=True, slots=True)
class StylePlan:
    """The styles of a job and the pattern candidates cycle through, from index `start` on."""

    styles: tuple[StyleSpec, ...]
    pattern: tuple[int, ...]
    start: int = 0

    def style_of(self, index: int) -> StyleSpec:
        return self.styles[self.pattern[(index - self.start) % len(self.pattern)]]

    def styles_for(self, indices: Iterable[int]) -> dict[int, StyleSpec]:
        return {index: self.style_of(index) for index in indices}


def style_plan(styles: list[StyleSpec] | None, needed_by_style: Mapping[str, int] | None = None,
               *, start: int = 0) -> StylePlan | None:
    """The plan of an attempt starting at candidate `start`: every style in turn (i % S), or,
    for a rework that names what each style misses, those styles in proportion; None for a job
    of one style."""
    if not styles:
        return None
    everything = StylePlan(tuple(styles), tuple(range(len(styles))))
    if not needed_by_style:
        return everything
    pattern = tuple(position for position, style in enumerate(styles)
                    for _ in range(max(0, needed_by_style.get(style.name, 0))))
    return StylePlan(tuple(styles), pattern, start) if pattern else everything
