"""Guidance on an input photo: the template's checks judged against measured values, and
the sentences a person reads. Pure: the values are given, not measured."""

import pytest

from services.common.templates import Catalogue, load_catalogue
from services.ingest.inputs.guidance import failed_checks, guidance_problem
from services.scorer.dimensions import DIMENSIONS

HEADSHOT = load_catalogue().input_checks("headshot")
GOOD = {"faces": 1.0, "face_size": 0.03, "sharpness": 860.0, "exposure": 0.45}


def test_every_check_names_a_dimension_the_scorer_measures():
    for name, template in load_catalogue().templates.items():
        for dimension in (template.input.checks if template.input else {}):
            assert dimension in DIMENSIONS, f"{name}: {dimension}"


def test_a_good_photo_fails_nothing():
    assert failed_checks(HEADSHOT, GOOD) == []


def test_a_small_face_is_explained_with_its_share_and_the_share_needed():
    [failed] = failed_checks(HEADSHOT, GOOD | {"face_size": 0.012})
    assert (failed.dimension, failed.value, failed.min) == ("face_size", 0.012, 0.02)
    assert failed.message.startswith("the face fills 1.2% of the photo; take it closer")
    assert "at least 2%" in failed.message


def test_no_face_says_so_once_and_the_checks_that_need_a_face_are_skipped():
    failed = failed_checks(HEADSHOT, GOOD | {"faces": 0.0, "face_size": 0.0})
    assert [f.dimension for f in failed] == ["faces"]
    assert "no face was found" in failed[0].message


def test_every_failure_is_listed_with_its_measure_and_bound():
    failed = failed_checks(HEADSHOT, {"faces": 2.0, "face_size": 0.05, "sharpness": 12.0, "exposure": 0.05})
    assert [(f.dimension, f.value) for f in failed] == [("faces", 2.0), ("sharpness", 12.0), ("exposure", 0.05)]
    assert "shows 2 faces" in failed[0].message and "too dark (mean brightness 5%)" in failed[2].message
    problem = guidance_problem("headshot", failed)
    assert (problem.status, problem.slug) == (422, "input-guidance")
    assert problem.extra["checks"][1] == {"dimension": "sharpness", "value": 12.0, "min": 40, "max": None,
                                          "message": failed[1].message}
    assert "blurred" in problem.detail and "crop it to the one person" in problem.detail


def test_a_value_the_scorer_could_not_measure_fails_its_check():
    [failed] = failed_checks(HEADSHOT, GOOD | {"sharpness": None})
    assert failed.value is None and "could not be measured" in failed.message


def test_a_template_without_input_checks_checks_nothing():
    assert load_catalogue().input_checks("generic") == {} and load_catalogue().input_checks("unknown") == {}


@pytest.mark.parametrize("checks", [
    {"faces": {"min": 1}},  # a bound without its sentence
    {"faces": {"below": "x"}},  # a sentence without a bound
    {"face_size": {"min": 0.1, "below": "x", "needs": "faces"}},  # needs a check that is not there
])
def test_a_catalogue_that_could_not_explain_itself_is_refused(checks):
    with pytest.raises(ValueError):
        Catalogue.model_validate({"version": "t", "templates": {"t": {"input": {"description": "d", "checks": checks}}}})
