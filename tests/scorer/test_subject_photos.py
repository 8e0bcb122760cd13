"""What a subject's photo shows, as the scorer measures it for ingest's screening: the
astronaut's one face and its embedding (Grace Hopper's lies past 0.6 from it), two people's
two faces and no embedding, a product found and separated from its background, a flat frame
with nothing to separate; every photo's size and fingerprint."""

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from services.common.quality.fingerprints import near_duplicates
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
