"""Which code measures each dimension, by dimension name, and measuring a batch with it.

A built-in dimension is declared without its measure (`services.common.quality.builtin`
needs no torch); the scorer registers each measure as a callable under its dimension's
name when it starts (`built_in`), and a plugin's dimension carries its own. A dimension
with neither is refused when a `Scorer` is built (`check_every_dimension_measured`), not
when it first measures.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from services.common.quality.dimensions import DIMENSIONS, Dimension
from services.scorer.dimensions.batch import ImageBatch
from services.scorer.dimensions.core import Measured


@dataclass(frozen=True)
class Measure:
    """A built-in measure and its family, the module whose measures share their work
    (a tier is measured one family at a time: `tiers`)."""

    family: str
    compute: Callable[..., torch.Tensor]

    def __call__(self, source: Any) -> torch.Tensor:
        return self.compute(source)


class UnmeasuredDimension(LookupError):
    """A registered dimension has no measure: neither its own nor one registered under its name."""


MEASURES: dict[str, Measure] = {}


def register_measures(family: str, measures: Mapping[str, Callable[..., torch.Tensor]]) -> None:
    """Register each of `family`'s measures under the name of the dimension it measures."""
    for dimension, compute in measures.items():
        known = MEASURES.get(dimension)
        if known is not None and known != Measure(family, compute):
            raise ValueError(f"dimension {dimension!r} already has a measure ({known.family})")
        MEASURES[dimension] = Measure(family, compute)


def measure_of(dimension: Dimension) -> Callable[..., torch.Tensor]:
    """The dimension's own measure, else the one registered under its name."""
    if dimension.measure is not None:
        return dimension.measure
    try:
        return MEASURES[dimension.name]
    except KeyError:
        raise UnmeasuredDimension(f"dimension {dimension.name!r} has no measure") from None


def family_of(dimension: Dimension) -> object:
    """What a dimension's measure shares its work with: a built-in measure's family, else
    the measure itself."""
    measure = measure_of(dimension)
    return measure.family if isinstance(measure, Measure) else measure


def unmeasured_dimensions() -> list[str]:
    return [name for name, dimension in DIMENSIONS.items() if dimension.measure is None and name not in MEASURES]


def check_every_dimension_measured() -> None:
    """Refuse to measure with a dimension that has no measure, naming every such one."""
    missing = unmeasured_dimensions()
    if missing:
        raise UnmeasuredDimension(f"dimensions without a measure: {', '.join(missing)}")


def image_values(batch: ImageBatch, dimensions: Sequence[Dimension]) -> dict[int, dict[str, Measured]]:
    """Each input image's value of each dimension; a clip's frames combined (`over_frames`),
    None where the dimension does not apply to the clip (as its measure noted)."""
    rows = measure_batch(batch, dimensions)
    if batch.clip:
        index, unmeasured = batch.indices[0], batch.context.unmeasured
        return {index: {d.name: None if unmeasured(d.name, index) else over_frames(d, row)
                        for d, row in zip(dimensions, rows)}}
    return {index: {d.name: row[position] for d, row in zip(dimensions, rows)}
            for position, index in enumerate(batch.indices)}


def over_frames(dimension: Dimension, values: list[float]) -> float:
    """One value of a clip from its frames' (a still image has one): their mean, or the
    worst frame where the dimension says so (the blurriest, the most flagged). Frames it
    could not be measured on (no face in them) are left out; NaN when there is none."""
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return math.nan
    if dimension.over_frames == "min":
        return min(values)
    if dimension.over_frames == "max":
        return max(values)
    return sum(values) / len(values)


def measure_batch(batch: ImageBatch, dimensions: Sequence[Dimension]) -> list[list[float]]:
    """One row per dimension, one value per image, copied to the host once."""
    if not dimensions:
        return []
    with torch.inference_mode():
        columns = [_measured(dimension, batch) for dimension in dimensions]
        rows = torch.stack([column.to(batch.planes.device) for column in columns])
    return rows.cpu().tolist()


def _measured(dimension: Dimension, batch: ImageBatch) -> torch.Tensor:
    source = batch.pixels if dimension.reads == "pixels" else batch
    values = torch.as_tensor(measure_of(dimension)(source)).detach().reshape(-1).to(torch.float64)
    if values.numel() != batch.size:
        raise ValueError(
            f"dimension {dimension.name!r} gave {values.numel()} values for a batch of {batch.size}"
        )
    # The ceilings of `tiers` rely on the declared range; NaN (not measurable) is outside no range.
    if (dimension.lowest is not None and bool((values < dimension.lowest).any())) or (
        dimension.highest is not None and bool((values > dimension.highest).any())
    ):
        raise ValueError(f"dimension {dimension.name!r} gave a value outside its declared range"
                         f" {dimension.lowest} to {dimension.highest}")
    return values
