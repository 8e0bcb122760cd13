"""What a subject's photo shows, as the scorer measures it for ingest's screening: the
astronaut's one face and its embedding (Grace Hopper's lies past 0.6 from it), two people's
two faces and no embedding, a product found and separated from its background, a flat frame
with nothing to separate; every photo's size and fingerprint; its checks measured at the
size it is used at."""

import io

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data as skimage_data

from genline_stack.portraits import poses
from services.common.quality.fingerprints import near_duplicates
from services.scorer.dimensions.likeness import working_copy
from services.scorer.routes.measurements import measured, measured_values
from services.scorer.subject_photos import UnreadablePhoto, measured_subject
from tests.scorer.conftest import jpeg, png


def grace() -> np.ndarray:
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def test_a_persons_photo_shows_one_face_and_its_embedding(photos):
    astronaut = measured_subject(png(photos["astronaut"]), "person")
    other = measured_subject(png(grace()), "person")
    assert (astronaut["width"], astronaut["height"]) == (512, 512)
    assert len(astronaut["faces"]) == 1 and len(astronaut["embedding"]) == 128
    distance = np.linalg.norm(np.subtract(astronaut["embedding"], other["embedding"]))
    assert distance > 0.6  # another person
    again = measured_subject(jpeg(photos["astronaut"], 80), "person")
    assert np.linalg.norm(np.subtract(astronaut["embedding"], again["embedding"])) < 0.2
    assert near_duplicates(astronaut["fingerprint"], again["fingerprint"])


def test_two_people_show_two_faces_and_no_embedding(photos):
    side_by_side = np.concatenate([photos["astronaut"], np.asarray(Image.fromarray(grace()).resize((437, 512)))], axis=1)
    shown = measured_subject(png(side_by_side), "person")
    assert len(shown["faces"]) == 2 and shown["embedding"] is None


def test_a_product_is_found_and_separated_and_a_flat_frame_is_not(photos):
    cup = measured_subject(png(photos["coffee"]), "product")["foreground"]
    flat = measured_subject(png(np.full((300, 300, 3), 200, np.uint8)), "product")["foreground"]
    assert 0.05 < cup["share"] < 0.9 and cup["contrast"] > 6 and len(cup["box"]) == 4
    assert flat["share"] == 0.0 and flat["box"] is None


def test_bytes_that_are_no_photo_are_refused():
    with pytest.raises(UnreadablePhoto):
        measured_subject(b"not a photo", "person")


def test_a_subjects_photo_is_checked_at_the_size_it_is_used_at(scorer, photos):
    """A photo stored at 9 megapixels whose detail is that of a 1,024-pixel picture (as a
    phone's lens and noise reduction resolve far less than its pixels): at its own size the
    variance of its Laplacian reads as blurred; its working copy, at the size trainers and
    candidates use, does not. A photo at most that size is measured as it is."""
    sharp_at_1024 = cv2.resize(photos["astronaut"], (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    stored = png(cv2.resize(sharp_at_1024, (3024, 3024), interpolation=cv2.INTER_CUBIC))
    native = measured_values(scorer, stored, dimensions=("sharpness", "exposure"))
    as_used, _ = measured(scorer, stored, dimensions=("sharpness", "exposure"), subject="person")
    assert native["sharpness"] < 40 <= as_used["sharpness"], (native, as_used)
    assert as_used["exposure"] == pytest.approx(native["exposure"], abs=0.01)
    # A job's input photo (a headshot's reference, a video's first frame) too.
    assert measured(scorer, stored, dimensions=("sharpness", "exposure"), subject=None) == (as_used, None)
    with Image.open(io.BytesIO(working_copy(stored))) as copy:
        assert copy.size == (1024, 1024)
    small = png(photos["astronaut"])
    assert working_copy(small) is small
    assert measured(scorer, small, dimensions=("sharpness",), subject="person")[0] == \
        measured_values(scorer, small, dimensions=("sharpness",))
    assert working_copy(b"not a photo") == b"not a photo", "left for the scorer to refuse"


def test_screening_finds_the_faces_the_scorer_counts(scorer):
    """The face count a photo's checks read and the faces its embedding is taken from come from
    one detection: the decoder's own grey, as a candidate's luma. The eight framings of her, at
    three sizes, include one (the second, at 600 pixels) where grey converted from RGB differs
    by a level enough to find a second, borderline face: screened that way, it passed the
    one-face check and was refused for want of an embedding."""
    for index, pose in enumerate(poses(Image.fromarray(skimage_data.astronaut()), 8)):
        with Image.open(io.BytesIO(pose)) as image:
            for side in (512, 600, 700):
                photo = png(np.asarray(image.convert("RGB").resize((side, side))))
                counted = measured(scorer, photo, dimensions=("faces",), subject="person")[0]["faces"]
                shown = measured_subject(photo, "person")
                assert (counted, len(shown["faces"])) == (1, 1), (index, side)
                assert shown["embedding"] is not None and shown["eyes"] == 2
