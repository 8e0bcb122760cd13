"""Tier 2 on real photographs: the astronaut is a headshot, the cat is not."""

import numpy as np
import pytest

from services.scorer.profiles import load_profile
from tests.scorer.conftest import png

FACE_DIMENSIONS = ("faces", "face_size", "face_position", "eyes_open", "skin_tone")


@pytest.fixture(scope="module")
def headshot():
    return load_profile("headshot")


@pytest.fixture(scope="module")
def astronaut_png(photos) -> bytes:
    return png(photos["astronaut"])


@pytest.fixture(scope="module")
def darker_astronaut_png(photos) -> bytes:
    """The same portrait 1.5 stops darker."""
    return png((photos["astronaut"] * 2**-1.5).round().astype(np.uint8))


@pytest.fixture(scope="module")
def verdicts(scorer, headshot, photos, astronaut_png):
    astronaut, cat = scorer.score([astronaut_png, png(photos["chelsea"])], headshot)
    return {"astronaut": astronaut, "chelsea": cat}


def test_astronaut_passes_headshot(verdicts):
    astronaut = verdicts["astronaut"]
    assert astronaut.passed, astronaut.failed
    assert astronaut.dimensions["faces"].value == 1
    assert astronaut.dimensions["eyes_open"].value >= 2
    assert 0.02 < astronaut.dimensions["face_size"].value < 0.1
    assert astronaut.dimensions["face_position"].value < 0.7


def test_cat_fails_faces(verdicts):
    cat = verdicts["chelsea"]
    assert not cat.passed
    assert cat.dimensions["faces"].value == 0
    assert {"faces", "face_size", "face_position", "eyes_open"} <= set(cat.failed)
    assert "exactly one face" in cat.dimensions["faces"].reason
    assert "no face was found" in cat.dimensions["face_position"].reason


def test_skin_tone_without_reference_passes_and_says_so(verdicts):
    skin_tone = verdicts["astronaut"].dimensions["skin_tone"]
    assert skin_tone.passed and skin_tone.value is None and skin_tone.available
    assert "no reference photo was given" in skin_tone.reason


def test_skin_tone_against_reference(scorer, headshot, astronaut_png, darker_astronaut_png):
    same, darker = scorer.score([astronaut_png, darker_astronaut_png], headshot, reference=astronaut_png)
    assert same.dimensions["skin_tone"].value == pytest.approx(0, abs=0.01)
    assert same.passed
    assert darker.dimensions["faces"].value == 1
    assert darker.dimensions["skin_tone"].value == pytest.approx(1.5, abs=0.1)
    assert darker.failed == ("skin_tone",)


def test_reference_without_a_face_fails_skin_tone_with_a_reason(scorer, headshot, photos, astronaut_png):
    [verdict] = scorer.score([astronaut_png], headshot, reference=png(photos["coffee"]))
    assert verdict.failed == ("skin_tone",)
    assert "reference photo" in verdict.dimensions["skin_tone"].reason


def test_generic_profile_does_not_detect_faces(scorer, verdicts, astronaut_png):
    [verdict] = scorer.score([astronaut_png], load_profile("generic"))
    assert not set(FACE_DIMENSIONS) & set(verdict.dimensions)


def test_product_profile_forbids_faces(scorer, photos, astronaut_png):
    astronaut, coffee = scorer.score([astronaut_png, png(photos["coffee"])], load_profile("product"))
    assert astronaut.failed == ("forbid:faces>=1",)
    assert "inside the forbidden minimum 1" in astronaut.dimensions["forbid:faces>=1"].reason
    assert coffee.passed, coffee.failed
