"""The plugin hook: entry points of genline.scorer.dimensions register dimensions."""

from importlib.metadata import EntryPoint

import numpy as np
import pytest
import torch

from services.common.quality.profiles import load_profile
from services.scorer.dimensions import (
    DIMENSIONS,
    ENTRY_POINT_GROUP,
    Bounds,
    Dimension,
    PluginError,
    QualityRules,
    Scoring,
    load_plugins,
)
from tests.scorer.conftest import png


def mean_red(pixels: torch.Tensor) -> torch.Tensor:
    return pixels[:, 0].mean(dim=(1, 2))


REDNESS = Dimension(
    name="test_redness",
    measure=mean_red,
    bounds=Bounds(maximum=0.5),
    failure_hint="image is too red",
)


def make_greenness() -> Dimension:
    return Dimension(
        name="test_greenness",
        measure=lambda pixels: pixels[:, 1].mean(dim=(1, 2)),
        bounds=Bounds(minimum=0.1),
        failure_hint="image is not green enough",
    )


NOT_A_DIMENSION = 42


def entry_point(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{__name__}:{target}", group=ENTRY_POINT_GROUP)


@pytest.fixture
def registered_plugins():
    names = load_plugins([entry_point("redness", "REDNESS"), entry_point("greenness", "make_greenness")])
    yield names
    for name in names:
        DIMENSIONS.pop(name)


def shaded(colour: tuple[int, int, int]) -> np.ndarray:
    """A colour fading to half towards the left."""
    shade = np.linspace(0.5, 1.0, 60)[None, :, None]
    return (np.ones((40, 60, 3)) * np.array(colour) * shade).round().astype(np.uint8)


def test_entry_points_register_a_dimension_or_a_factorys_dimension(registered_plugins):
    assert registered_plugins == ["test_redness", "test_greenness"]
    assert DIMENSIONS["test_redness"] is REDNESS
    assert DIMENSIONS["test_greenness"].failure_hint == "image is not green enough"


def test_a_plugin_dimension_is_scored_through_rules(registered_plugins, scorer):
    rules = QualityRules(thresholds={"test_redness": {}, "test_greenness": {"min": 0.2}})
    profile = load_profile("generic", rules)
    red_pixels = shaded((250, 20, 20))
    red, green = scorer.score([png(red_pixels), png(shaded((20, 250, 20)))], Scoring(profile=profile))
    assert red.dimensions["test_redness"].value == pytest.approx(red_pixels[..., 0].mean() / 255, abs=1e-6)
    assert "above the maximum 0.5 (image is too red)" in red.dimensions["test_redness"].reason
    assert {"test_redness", "test_greenness"} <= set(red.failed)
    assert not {"test_redness", "test_greenness"} & set(green.failed)
    assert "exposure" in red.dimensions, "the profile's own dimensions are still measured"


def test_loading_the_same_plugins_twice_is_harmless(registered_plugins):
    assert load_plugins([entry_point("redness", "REDNESS")]) == ["test_redness"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("NOT_A_DIMENSION", "gave a int, not a Dimension"),
        ("missing_name", "could not be loaded"),
    ],
)
def test_a_broken_plugin_is_reported_by_name(target, message):
    with pytest.raises(PluginError, match=f"scorer plugin 'broken'.*{message}"):
        load_plugins([entry_point("broken", target)])


def test_a_plugin_cannot_replace_a_built_in_dimension():
    impostor = EntryPoint(name="impostor", value="tests.scorer.test_plugins:impostor", group=ENTRY_POINT_GROUP)
    with pytest.raises(PluginError, match="'sharpness' is already registered"):
        load_plugins([impostor])


def impostor() -> Dimension:
    return Dimension(name="sharpness", measure=mean_red, bounds=Bounds(minimum=0.1), failure_hint="not the real one")


def test_no_plugins_are_installed_here():
    assert load_plugins() == []
