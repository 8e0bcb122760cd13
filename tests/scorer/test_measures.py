"""Every dimension has a measure: a built-in one registered under its name by the scorer, or
a plugin's own; a dimension with neither stops the scorer from starting."""

import pytest

from services.common.quality import builtin
from services.common.quality.dimensions import DIMENSIONS, Bounds, Dimension
from services.scorer.dimensions import Equipment, Scorer, built_in, tier1
from services.scorer.dimensions.measures import (
    MEASURES,
    UnmeasuredDimension,
    check_every_dimension_measured,
    measure_of,
    unmeasured_dimensions,
)

CPU = "cpu"


def test_every_built_in_dimension_has_a_measure_registered_under_its_name():
    assert unmeasured_dimensions() == []
    assert {d.name for d in builtin.BUILT_IN} <= set(MEASURES)
    assert set(MEASURES) <= set(DIMENSIONS), "a measure registered under no dimension's name"
    assert measure_of(DIMENSIONS["sharpness"]).compute is tier1.laplacian_variance
    assert MEASURES["frame_sharpness"].family == "tier1" and MEASURES["nsfw"].family == "moderation"
    assert set(built_in.FAMILIES) == {m.family for m in MEASURES.values()}


def test_a_dimension_with_no_measure_stops_the_scorer_from_starting(monkeypatch):
    orphan = Dimension(name="orphan", measure=None, bounds=Bounds(maximum=1.0), failure_hint="no code measures this")
    monkeypatch.setitem(DIMENSIONS, "orphan", orphan)

    assert unmeasured_dimensions() == ["orphan"]
    with pytest.raises(UnmeasuredDimension, match="orphan"):
        check_every_dimension_measured()
    with pytest.raises(UnmeasuredDimension, match="orphan"):
        Scorer(Equipment(device=CPU, load_entry_points=False))
    with pytest.raises(UnmeasuredDimension, match="orphan"):
        measure_of(orphan)

