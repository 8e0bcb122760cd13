"""Tier 2 on real photographs: the astronaut (Eileen Collins, scikit-image) and Grace
Hopper (matplotlib's sample data) are two people; the cat, the coffee cup are no one."""

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from services.common import face_models
from services.common.quality.profiles import load_profile
from services.scorer.dimensions import Equipment, Scorer, Scoring
from tests.scorer.conftest import CPU, png, rgb_photo

FACE_DIMENSIONS = ("faces", "face_size", "face_position", "eyes_open", "identity", "skin_tone", "lighting")


def grace_hopper() -> np.ndarray:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def headshot():
    return load_profile("headshot")


@pytest.fixture(scope="module")
def astronaut_png(photos) -> bytes:
    return png(photos["astronaut"])


@pytest.fixture(scope="module")
def darker_astronaut_png(photos) -> bytes:
    """The same portrait 1.5 stops darker in its encoded values (3.3 stops of light)."""
    return png((photos["astronaut"] * 2**-1.5).round().astype(np.uint8))


@pytest.fixture(scope="module")
def edited_astronaut_png(photos) -> bytes:
    """A mild edit: 10 % brighter, lifted, cropped by a few pixels."""
    brighter = np.clip(photos["astronaut"].astype(np.float64) * 1.1 + 10, 0, 255).astype(np.uint8)
    return png(np.ascontiguousarray(brighter[10:500, 5:505]))


@pytest.fixture(scope="module")
def two_people_png(photos) -> bytes:
    astronaut = Image.fromarray(photos["astronaut"]).resize((512, 512))
    grace = Image.fromarray(grace_hopper()).resize((437, 512))
    return png(np.concatenate([np.asarray(astronaut), np.asarray(grace)], axis=1))


@pytest.fixture(scope="module")
def verdicts(scorer, headshot, photos, astronaut_png):
    astronaut, cat = scorer.score([astronaut_png, png(photos["chelsea"])], Scoring(profile=headshot))
    return {"astronaut": astronaut, "chelsea": cat}


def test_astronaut_passes_headshot(verdicts):
    astronaut = verdicts["astronaut"]
    assert astronaut.passed, astronaut.failed
    assert astronaut.dimensions["faces"].value == 1
    assert astronaut.dimensions["eyes_open"].value >= 2
    assert 0.02 < astronaut.dimensions["face_size"].value < 0.1
    assert astronaut.dimensions["face_position"].value < 0.7
    assert astronaut.dimensions["lighting"].value < 1.0
    assert astronaut.dimensions["background"].value < 0.25


def test_cat_fails_faces(verdicts):
    cat = verdicts["chelsea"]
    assert not cat.passed
    assert cat.dimensions["faces"].value == 0
    assert {"faces", "face_size", "face_position", "eyes_open", "lighting"} <= set(cat.failed)
    assert "exactly one face" in cat.dimensions["faces"].reason
    assert "no face was found" in cat.dimensions["face_position"].reason


def test_identity_and_skin_tone_without_reference_pass_and_say_so(verdicts):
    for name in ("identity", "skin_tone"):
        result = verdicts["astronaut"].dimensions[name]
        assert result.passed and result.value is None and result.available
        assert "no reference photo was given" in result.reason


def test_same_person_passes_identity_another_fails(scorer, headshot, astronaut_png, edited_astronaut_png):
    same, edited, other = scorer.score([astronaut_png, edited_astronaut_png, png(grace_hopper())],
                                       Scoring(profile=headshot, reference=astronaut_png))
    assert same.dimensions["identity"].value == pytest.approx(0, abs=0.01)
    assert edited.dimensions["identity"].passed and edited.dimensions["identity"].value < 0.3
    assert same.passed and edited.passed, (same.failed, edited.failed)
    assert other.dimensions["faces"].value == 1
    assert other.dimensions["identity"].value > 0.6
    assert "identity" in other.failed
    assert "not the reference photo's person" in other.dimensions["identity"].reason


def test_no_face_and_two_faces_are_reported_as_such(scorer, headshot, photos, astronaut_png, two_people_png):
    nobody, two = scorer.score([png(photos["coffee"]), two_people_png], Scoring(profile=headshot, reference=astronaut_png))
    assert nobody.dimensions["faces"].value == 0 and two.dimensions["faces"].value == 2
    for verdict in (nobody, two):
        identity = verdict.dimensions["identity"]
        assert {"faces", "identity"} <= set(verdict.failed)
        assert identity.value is not None and np.isnan(identity.value)
        assert "does not show exactly one face" in identity.reason


def test_darker_copy_fails_skin_tone_against_the_original_and_passes_against_itself(
    scorer, headshot, astronaut_png, darker_astronaut_png
):
    same, darker = scorer.score([astronaut_png, darker_astronaut_png], Scoring(profile=headshot, reference=astronaut_png))
    assert same.dimensions["skin_tone"].value == pytest.approx(0, abs=0.01)
    assert darker.dimensions["faces"].value == 1
    assert darker.dimensions["skin_tone"].value > 2
    assert "skin_tone" in darker.failed and "identity" not in darker.failed
    [itself] = scorer.score([darker_astronaut_png], Scoring(profile=headshot, reference=darker_astronaut_png))
    assert itself.dimensions["skin_tone"].passed and itself.dimensions["skin_tone"].value == pytest.approx(0, abs=0.01)


def test_white_balance_cast_is_not_a_skin_tone(scorer, headshot, photos, astronaut_png):
    """A warm cast over the whole image (a white-balance error) leaves the skin tone."""
    warm = photos["astronaut"].astype(np.float64) * np.array([1.0, 0.85, 0.7])
    [verdict] = scorer.score([png(warm.astype(np.uint8))], Scoring(profile=headshot, reference=astronaut_png))
    assert verdict.dimensions["skin_tone"].value < 0.5


def test_a_coloured_backdrop_is_not_a_skin_tone(scorer, headshot, photos, astronaut_png):
    """Half the frame a light blue backdrop, beside and above her: her skin is her own (a grey
    world white balance read the blue as a cast and her skin a stop redder)."""
    pixels = photos["astronaut"].copy()
    face = face_models.detect_faces(np.ascontiguousarray(pixels.mean(axis=2).astype(np.uint8)), 24)[0]
    backdrop = np.ones(pixels.shape[:2], dtype=bool)
    backdrop[max(0, face.y - face.height // 2):, max(0, face.x - face.width): face.x + 2 * face.width] = False
    pixels[backdrop] = (173, 216, 230)
    [verdict] = scorer.score([png(pixels)], Scoring(profile=headshot, reference=astronaut_png))
    assert verdict.dimensions["skin_tone"].value < 0.3, verdict.dimensions["skin_tone"]


def test_half_shadowed_face_fails_lighting(scorer, headshot, photos):
    shadowed = photos["astronaut"].astype(np.float64)
    shadowed[60:200, 170:222] *= 0.55  # the left half of her face
    [verdict] = scorer.score([png(shadowed.astype(np.uint8))], Scoring(profile=headshot))
    assert verdict.dimensions["faces"].value == 1
    assert verdict.failed == ("lighting",)
    assert "harsh shadow" in verdict.dimensions["lighting"].reason


def test_reference_without_a_face_fails_identity_and_skin_tone(scorer, headshot, photos, astronaut_png):
    [verdict] = scorer.score([astronaut_png], Scoring(profile=headshot, reference=png(photos["coffee"])))
    assert verdict.failed == ("identity", "skin_tone")
    assert "reference photo" in verdict.dimensions["skin_tone"].reason


def test_without_the_face_model_identity_is_unavailable_and_fails(monkeypatch, photos, headshot, astronaut_png):
    monkeypatch.setattr(face_models, "models_dir", lambda: None)
    with Scorer(Equipment(device=CPU, load_entry_points=False)) as scorer:
        [verdict] = scorer.score([astronaut_png], Scoring(profile=headshot, reference=astronaut_png))
    identity = verdict.dimensions["identity"]
    assert not identity.available and identity.value is None
    assert verdict.failed == ("identity",)
    assert "face-recognition-models" in identity.reason


def test_without_dlib_haar_stands_in_and_says_so(monkeypatch, headshot, astronaut_png):
    monkeypatch.setattr(face_models, "dlib", None)
    with Scorer(Equipment(device=CPU, load_entry_points=False)) as scorer:
        [verdict] = scorer.score([astronaut_png], Scoring(profile=headshot))
    assert verdict.dimensions["faces"].value == 1
    assert "Haar cascade" in verdict.dimensions["faces"].reason


def test_generic_profile_does_not_detect_faces(scorer, astronaut_png):
    [verdict] = scorer.score([astronaut_png], Scoring(profile=load_profile("generic")))
    assert not set(FACE_DIMENSIONS) & set(verdict.dimensions)


def test_product_profile_forbids_faces_and_clutter(scorer, photos, astronaut_png):
    astronaut, coffee, grass = scorer.score(
        [astronaut_png, png(photos["coffee"]), png(rgb_photo("grass"))], Scoring(profile=load_profile("product"))
    )
    assert astronaut.failed == ("forbid:faces>=1",)
    assert "inside the forbidden minimum 1" in astronaut.dimensions["forbid:faces>=1"].reason
    assert coffee.passed, coffee.failed
    assert "background" in grass.failed


def test_each_thread_finds_faces_with_a_copy_of_one_built_detector(monkeypatch, photos):
    """dlib's detector keeps scratch state, so threads do not share one; but building it
    takes 230 ms, so it is built once a process and each thread runs a copy of it, which
    finds the faces a newly built one finds, with the same scores."""
    import threading

    import dlib

    built, build = [], dlib.get_frontal_face_detector

    def counted():
        built.append(1)
        return build()

    monkeypatch.setattr(face_models, "_built", {})
    monkeypatch.setattr(face_models.dlib, "get_frontal_face_detector", counted)
    two_people = np.concatenate([np.asarray(Image.fromarray(photos["astronaut"]).resize((512, 512))),
                                 np.asarray(Image.fromarray(grace_hopper()).resize((437, 512)))], axis=1)
    lumas = [np.ascontiguousarray(np.asarray(Image.fromarray(rgb).convert("L")))
             for rgb in (photos["astronaut"], grace_hopper(), two_people)]
    expected = [[(str(rect), score) for rect, score in zip(*counted().run(luma, 0, 0.0)[:2], strict=True)]
                for luma in lumas]
    built.clear()
    found: dict[str, list] = {}

    def detect(name: str) -> None:
        detector = face_models._loaded("hog", face_models._hog_copy)
        found[name] = [[(str(rect), score) for rect, score in zip(*detector.run(luma, 0, 0.0)[:2], strict=True)]
                       for luma in lumas]

    threads = [threading.Thread(target=detect, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert [found[f"t{n}"] for n in range(3)] == [expected] * 3
    assert [len(faces) >= 1 for faces in expected] == [True, True, True] and len(expected[2]) >= 2, expected
