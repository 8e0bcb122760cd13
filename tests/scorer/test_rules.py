"""Profiles from YAML and Tier-3 QualityRules: validation, overrides, require, forbid, size."""

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.quality.profiles import ProfileError, load_profile, profile_names, with_ceiling
from services.scorer.dimensions import DIMENSIONS, Bounds, QualityRules, Scoring
from services.scorer.dimensions.core import judge
from tests.scorer.conftest import png

EXAMPLE = {
    "profile": "headshot",
    "thresholds": {"sharpness": {"min": 80}},
    "require": ["prompt_alignment"],
    "forbid": [{"dimension": "faces", "min": 1}],
}


@pytest.fixture(scope="module")
def camera_png(photos) -> bytes:
    return png(photos["camera"])


@pytest.fixture(scope="module")
def astronaut_png(photos) -> bytes:
    return png(photos["astronaut"])


def bounds_of(profile, name):
    return next(c.bounds for c in profile.checks if c.dimension == name)


def test_the_packaged_profiles_exist():
    assert profile_names() == ["generic", "headshot", "motion", "product", "styled-headshot", "subject-headshot", "subject-product", "video"]


def test_thresholds_come_from_the_yaml_files():
    product = load_profile("product")
    assert bounds_of(product, "sharpness") == Bounds(minimum=50)
    assert bounds_of(product, "exposure") == Bounds(minimum=0.25, maximum=0.9)
    assert DIMENSIONS["sharpness"].bounds == Bounds(minimum=20)
    assert [(f.dimension, f.bounds) for f in product.forbidden] == [("faces", Bounds(minimum=1))]


def test_generic_does_not_require_prompt_alignment_but_moderation():
    generic = load_profile("generic")
    assert "prompt_alignment" in generic.dimension_names
    assert generic.required == frozenset({"nsfw"})


@pytest.mark.parametrize("name", ["nope", "../generic", "", "Generic"])
def test_unknown_profile_is_a_profile_error(name):
    with pytest.raises(ProfileError, match="unknown profile"):
        load_profile(name)


def test_the_example_rules_validate_and_apply():
    rules = QualityRules.model_validate(EXAMPLE)
    profile = load_profile("generic", rules)
    assert profile.name == "headshot", "rules.profile picks the profile"
    assert bounds_of(profile, "sharpness") == Bounds(minimum=80)
    assert profile.required == {"prompt_alignment", "nsfw", "identity"}
    assert set(profile.must_compute()) == {"prompt_alignment", "nsfw", "identity", "faces"}


def test_rules_are_frozen():
    rules = QualityRules.model_validate(EXAMPLE)
    with pytest.raises(ValueError):
        rules.profile = "generic"
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_profile("generic").name = "other"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"thresholds": {"sparkle": {"min": 1}}}, "unknown dimension.*sparkle"),
        ({"require": ["sparkle"]}, "unknown dimension.*sparkle"),
        ({"forbid": [{"dimension": "sparkle", "min": 1}]}, "unknown dimension.*sparkle"),
        ({"thresholds": {"exposure": {"min": 0.8, "max": 0.2}}}, "min 0.8 is above max 0.2"),
        ({"forbid": [{"dimension": "faces", "min": 3, "max": 1}]}, "min 3.0 is above max 1.0"),
        ({"forbid": [{"dimension": "faces"}]}, "needs a min, a max or both"),
        ({"thresholds": {"noise": {"weight": -1}}}, "greater than or equal to 0"),
        ({"thresholds": {"noise": {"max": math.nan}}}, "finite number"),
        ({"thresholds": {"noise": {"maximum": 3}}}, "Extra inputs are not permitted"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_rules_are_rejected_with_a_clear_value_error(rules, message):
    with pytest.raises(ValueError, match=message):
        QualityRules.model_validate(rules)


def test_an_override_replaces_only_the_sides_it_names():
    profile = load_profile("generic", QualityRules(thresholds={"exposure": {"min": 0.3}, "noise": {"weight": 3}}))
    assert bounds_of(profile, "exposure") == Bounds(minimum=0.3, maximum=0.92)
    assert next(c.weight for c in profile.checks if c.dimension == "noise") == 3


def test_an_override_that_contradicts_the_profile_is_a_profile_error():
    with pytest.raises(ProfileError, match="exposure: minimum 0.95 is above maximum 0.92"):
        load_profile("generic", QualityRules(thresholds={"exposure": {"min": 0.95}}))


def test_thresholds_on_a_dimension_the_profile_lacks_add_it(scorer, camera_png):
    profile = load_profile("generic", QualityRules(thresholds={"faces": {"max": 0}}))
    assert bounds_of(profile, "faces") == Bounds(maximum=0)
    [verdict] = scorer.score([camera_png], Scoring(profile=profile))
    assert verdict.dimensions["faces"].value == 0 and verdict.passed


def test_a_stricter_threshold_fails_an_image_that_passed(scorer, camera_png):
    strict = load_profile("generic", QualityRules(thresholds={"sharpness": {"min": 5000}}))
    plain, tightened = (scorer.score([camera_png], Scoring(profile=load_profile("generic")))
                        + scorer.score([camera_png], Scoring(profile=strict)))
    assert plain.passed
    assert tightened.failed == ("sharpness",)
    assert "below the minimum 5000.0" in tightened.dimensions["sharpness"].reason


def test_forbidden_condition_fails_only_the_images_it_matches(scorer, camera_png, astronaut_png):
    rules = QualityRules(forbid=[{"dimension": "faces", "min": 1}])
    camera, astronaut = scorer.score([camera_png, astronaut_png], Scoring(profile=load_profile("generic", rules)))
    assert camera.passed
    assert astronaut.failed == ("forbid:faces>=1",)
    result = astronaut.dimensions["forbid:faces>=1"]
    assert result.value == 1 and result.threshold == 1 and not result.passed
    assert "faces" not in astronaut.dimensions, "a forbidden condition is not also a check"


def test_forbidden_range_is_labelled_and_judged(scorer, camera_png):
    rules = QualityRules(forbid=[{"dimension": "exposure", "min": 0.4, "max": 0.6}])
    [verdict] = scorer.score([camera_png], Scoring(profile=load_profile("generic", rules)))
    assert verdict.failed == ("forbid:0.4<=exposure<=0.6",)
    assert "inside the forbidden range 0.4 to 0.6" in verdict.dimensions["forbid:0.4<=exposure<=0.6"].reason


def test_a_forbidden_condition_that_cannot_be_computed_is_a_missing_capability(scorer, camera_png):
    rules = QualityRules(forbid=[{"dimension": "prompt_alignment", "max": 0.1}])
    profile = load_profile("generic", rules)
    assert scorer.missing_capabilities(profile) == ["prompt_alignment"]
    [verdict] = scorer.score([camera_png], Scoring(profile=profile, prompt="a camera"))
    assert "forbid:prompt_alignment<=0.1" in verdict.failed


def test_required_dimension_added_with_its_defaults(scorer, camera_png):
    profile = load_profile("generic", QualityRules(require=["eyes_open"]))
    assert bounds_of(profile, "eyes_open") == DIMENSIONS["eyes_open"].bounds
    assert scorer.missing_capabilities(profile) == []
    [verdict] = scorer.score([camera_png], Scoring(profile=profile))
    assert verdict.failed == ("eyes_open",)


def test_size_and_aspect_pass_when_nothing_is_requested(scorer, camera_png):
    [verdict] = scorer.score([camera_png], Scoring(profile=load_profile("generic")))
    for name in ("size", "aspect"):
        assert verdict.dimensions[name].passed and verdict.dimensions[name].value is None


@pytest.mark.parametrize(
    ("requested", "size", "aspect"),
    [((512, 512), 0.0, 0.0), ((500, 500), 0.024, 0.0), ((1024, 1024), 0.5, 0.0), ((1024, 512), 0.5, math.log(2))],
)
def test_size_and_aspect_against_the_request(scorer, camera_png, requested, size, aspect):
    [verdict] = scorer.score([camera_png], Scoring(profile=load_profile("generic"), requested_size=requested))
    assert verdict.dimensions["size"].value == pytest.approx(size)
    assert verdict.dimensions["aspect"].value == pytest.approx(aspect)
    assert verdict.dimensions["size"].passed == (size <= 0.05)
    assert verdict.dimensions["aspect"].passed == (aspect <= 0.01)


def test_product_wants_exactly_the_requested_size(scorer, photos):
    coffee = png(photos["coffee"])  # 600 × 400
    product = load_profile("product")
    [exact] = scorer.score([coffee], Scoring(profile=product, requested_size=(600, 400)))
    [close] = scorer.score([coffee], Scoring(profile=product, requested_size=(608, 400)))
    assert exact.passed
    assert close.failed == ("size", "aspect")


@pytest.mark.parametrize("requested", [(0, 10), (10, -1), (10.5, 10)])
def test_invalid_requested_size_is_refused(scorer, camera_png, requested):
    with pytest.raises(ValueError, match="requested_size"):
        scorer.score([camera_png], Scoring(profile=load_profile("generic"), requested_size=requested))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(value=finite, low=finite, high=finite)
def test_judging_agrees_with_the_bounds(value, low, high):
    low, high = min(low, high), max(low, high)
    bounds = Bounds(minimum=low, maximum=high)
    result = judge(DIMENSIONS["exposure"], value, bounds=bounds)
    assert result.passed == (low <= value <= high)
    assert result.threshold in (low, high)
    assert ("meets the range" in result.reason) == result.passed


def test_tenant_nsfw_ceiling_tightens_and_never_loosens():
    loose = QualityRules.model_validate({"thresholds": {"nsfw": {"max": 0.9}}})
    capped = with_ceiling(load_profile("generic", loose), "nsfw", maximum=0.3)
    assert bounds_of(capped, "nsfw") == Bounds(maximum=0.3)
    strict = QualityRules.model_validate({"thresholds": {"nsfw": {"max": 0.1}}})
    assert bounds_of(with_ceiling(load_profile("generic", strict), "nsfw", maximum=0.3), "nsfw") == Bounds(maximum=0.1)
    assert with_ceiling(load_profile("generic"), "nsfw", maximum=None) == load_profile("generic")
