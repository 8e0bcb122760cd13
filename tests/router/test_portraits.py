"""The local portrait model paints faces that are real to the scorer's face models: measured
with dlib's detector and embeddings (services.common.face_models) on skimage's astronaut as the
subject and Grace Hopper as someone else, a clean portrait is one face, under 0.6 from the
subject's mean face, eyes open; each planted defect lands where the scorer will refuse it
(another person and a drifted identity over 0.6, two faces, closed eyes); each style's
parameters are painted (its backdrop's colour), candidates of one style are not
near-duplicates, and the local trainer's weights are small and paint the same subject. An order
of no subject across framed styles is painted as a stranger (the shipped donor whose eyes the
detector finds), with a stranger's defects only."""

import functools
import io
import itertools

import numpy as np
import pytest
from PIL import Image

from services.common import face_models
from services.common.contracts import StyleSpec
from services.common.quality.fingerprints import fingerprint, near_duplicates
from services.router.providers.base import GenerationRequest
from services.router.providers.factory import build_provider
from services.router.providers.identity_inputs import IdentityInput
from services.router.providers.local.portraits.faces import LocalWeights, measured
from services.router.providers.local.trainer import LocalTrainer
from services.router.providers.registry import parse_registry
from services.router.providers.trainers import TrainingRequest
from tests.router.subject_photos import astronaut_photos, hopper_photo

pytestmark = pytest.mark.skipif(not face_models.embedding_available(), reason="needs dlib and its face models")

STYLES = [{"name": "studio", "prompt": "studio headshot", "params": {"backdrop": "#e8e4dc", "wardrobe": "navy",
                                                                      "light": "studio", "framing": "shoulders"}},
          {"name": "window", "prompt": "by a window", "params": {"backdrop": "slategray", "wardrobe": "white",
                                                                 "light": "window", "framing": "close"}},
          {"name": "dark", "prompt": "dramatic", "params": {"backdrop": "#20242c", "wardrobe": "black",
                                                            "light": "dramatic", "framing": "shoulders"}},
          {"name": "park", "prompt": "outdoors", "params": {"backdrop": "darkolivegreen", "wardrobe": "beige",
                                                            "light": "golden", "framing": "waist"}}]


def portraits(defects: dict | None = None) -> object:
    registry = parse_registry({"providers": {"portraits": {
        "adapter": "local", "models": [{"name": "local-portrait", "version": "1"}],
        "capabilities": {"identity": ["lora", "reference"], "subjects_only": True, "max_images_per_request": 8},
        "price": {"per_image_micro_usd": 4000}, "concurrency": 4, "latency": {"base_s": 0, "per_image_s": 0},
        "local": {"defect_rate": 0.0, "portrait": defects or {}}}}})
    return build_provider(registry.providers["portraits"])


@functools.cache
def centroid(photos: tuple[bytes, ...]) -> np.ndarray:
    return np.mean([measured(photo).embedding for photo in photos], axis=0)


def judged(data: bytes, mean_face: np.ndarray) -> tuple[int, float | None, float]:
    """Faces found, the identity distance of the one face, and its open eyes, as the scorer measures them."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    luma = np.ascontiguousarray(np.asarray(Image.fromarray(rgb).convert("L")))
    faces = face_models.detect_faces(luma, max(24, int(min(luma.shape) * 0.08)))
    if len(faces) != 1:
        return len(faces), None, 0.0
    distance = float(np.linalg.norm(face_models.face_embedding(rgb, faces[0]) - mean_face))
    return 1, distance, face_models.count_eyes(luma, faces[0], band=0.6)


def request(identity: IdentityInput | None, count: int, start: int = 0, **fields) -> GenerationRequest:
    styles = {i: StyleSpec.model_validate(STYLES[i % len(STYLES)]) for i in range(start, start + count)}
    return GenerationRequest(**({"job_id": "job-portraits", "attempt": 1, "prompt": "a professional headshot",
                                 "seed": 11, "count": count, "width": 512, "height": 512, "model": "local-portrait",
                                 "model_version": "1", "start_index": start, "styles": styles,
                                 "identity": identity} | fields))


def by_reference(photos: tuple[bytes, ...]) -> IdentityInput:
    return IdentityInput(mode="reference", subject_id="subject", trigger_word="glxqzvyk", photos=photos, photo_set="set-" + str(len(photos)))


async def test_clean_portraits_are_the_subject_alone_with_eyes_open_in_each_style():
    photos = astronaut_photos()
    painted = await portraits().generate(request(by_reference(photos), 6))
    mean_face = centroid(photos[:4])
    found = [judged(image.data, mean_face) for image in painted]
    assert [faces for faces, _, _ in found] == [1] * 6
    assert max(distance for _, distance, _ in found) < 0.6, found
    assert min(eyes for _, _, eyes in found) >= 2, found
    for image in painted:  # the style's backdrop is what fills the top corner
        style = STYLES[image.index % len(STYLES)]["params"]
        corner = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"))[:24, :24].reshape(-1, 3).mean(axis=0)
        from PIL import ImageColor
        wanted = np.array(ImageColor.getrgb(style["backdrop"]))
        assert np.abs(corner - wanted * corner.sum() / max(wanted.sum(), 1)).max() < 60, (style, corner)


@pytest.mark.parametrize("subject, other", [("astronaut", "hopper"), ("hopper", "astronaut")])
async def test_another_person_and_a_drifted_identity_land_over_the_threshold(subject, other):
    photos = astronaut_photos() if subject == "astronaut" else (hopper_photo(),) * 4
    mean_face = centroid(photos[:4])
    for kind in ("another_person", "drift"):
        painted = await portraits({kind: 1.0}).generate(request(by_reference(photos), 2))
        found = [judged(image.data, mean_face) for image in painted]
        assert all(faces == 1 and distance > 0.6 for faces, distance, _ in found), (kind, found)


async def test_two_faces_and_closed_eyes_are_painted_as_such():
    photos = astronaut_photos()
    mean_face = centroid(photos[:4])
    two = await portraits({"two_faces": 1.0}).generate(request(by_reference(photos), 2))
    assert [judged(image.data, mean_face)[0] for image in two] == [2, 2]
    shut = await portraits({"closed_eyes": 1.0}).generate(request(by_reference(photos), 2))
    found = [judged(image.data, mean_face) for image in shut]
    assert all(faces == 1 and distance < 0.6 and eyes < 2 for faces, distance, eyes in found), found


async def test_defects_are_planted_at_their_rates_and_the_same_candidates_come_out_again():
    provider = portraits({"closed_eyes": 0.25, "drift": 0.25})
    identity = by_reference(astronaut_photos())
    first = await provider.generate(request(identity, 8))
    again = await provider.generate(request(identity, 4, start=4))
    assert [image.data for image in first[4:]] == [image.data for image in again]
    drawn = [provider.portraits._defect(request(identity, 40), index) for index in range(40)]
    assert 4 <= drawn.count("closed_eyes") <= 16 and 4 <= drawn.count("drift") <= 16
    assert drawn.count(None) >= 10


async def test_candidates_of_one_style_are_not_near_duplicates():
    identity = by_reference(astronaut_photos())
    painted = await portraits().generate(request(identity, 24, width=256, height=256,
                                                 styles={}, params=STYLES[0]["params"]))
    prints = [fingerprint(image.data) for image in painted]
    close = sum(near_duplicates(a, b) for a, b in itertools.combinations(prints, 2))
    assert close <= 0.05 * len(prints) * (len(prints) - 1) / 2, close


async def test_the_local_trainers_weights_are_small_and_paint_the_same_subject():
    registry = parse_registry({"providers": {"trainer": {
        "adapter": "local", "models": [{"name": "local-lora-trainer", "version": "1"}], "capabilities": {"stages": []},
        "price": {}, "concurrency": 1, "trainer": {"model": {"name": "local-lora-trainer", "version": "1"},
                                                   "base": "genline-local-faces", "price": {"per_run_micro_usd": 1},
                                                   "expected_s": 0.01, "timeout_s": 10}}}})
    trainer = LocalTrainer(registry.providers["trainer"])
    photos = astronaut_photos()
    handle = await trainer.submit(TrainingRequest(identity_id="identity", trigger_word="glxqzvyk", photos=photos))
    output = None
    while output is None:
        output = await trainer.poll(handle)
    weights = await trainer.weights(output)
    unpacked = LocalWeights.unpack(weights)
    assert len(unpacked.crops) == len(photos) and unpacked.donor == "grace_hopper"
    assert len(weights) < 30_000 * len(photos)
    lora = IdentityInput(mode="lora", subject_id="subject", trigger_word="glxqzvyk", base="genline-local-faces", weights=weights)
    painted = await portraits().generate(request(lora, 4))
    mean_face = centroid(photos[:4])
    assert all(judged(image.data, mean_face)[1] < 0.6 for image in painted)


async def test_a_product_is_cut_out_of_its_photos_and_placed_on_each_styles_backdrop():
    import skimage.data
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.coffee()).save(buffer, format="PNG")
    photo = buffer.getvalue()
    product = IdentityInput(mode="reference", subject_id="mug", kind="product", photos=(photo,), photo_set="mug")
    painted = await portraits({"another_person": 1.0}).generate(request(product, 4))
    assert len({fingerprint(image.data) for image in painted}) == 4
    for image in painted:
        pixels = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"))
        assert pixels[:16, :16].reshape(-1, 3).std(axis=0).max() < 12  # the backdrop, not the photo's background
        assert pixels[pixels.shape[0] // 2 - 40: pixels.shape[0] // 2 + 40].std() > 25  # the product in the middle


def painter(defects: dict | None = None) -> object:
    """A local provider of no identity: the market's generic painter."""
    registry = parse_registry({"providers": {"painter": {
        "adapter": "local", "models": [{"name": "local-painter", "version": "1"}],
        "capabilities": {"max_images_per_request": 8}, "price": {"per_image_micro_usd": 4000}, "concurrency": 4,
        "latency": {"base_s": 0, "per_image_s": 0}, "local": {"defect_rate": 0.0, "portrait": defects or {}}}}})
    return build_provider(registry.providers["painter"])


def stranger_request(count: int, **fields) -> GenerationRequest:
    return request(None, count, model="local-painter", **fields)  # an order of no subject


async def test_an_order_of_no_subject_across_framed_styles_is_painted_as_a_stranger_alone_with_eyes_open():
    painted = await painter().generate(stranger_request(8))
    assert [image.media_type for image in painted] == ["image/jpeg"] * 8 and [image.index for image in painted] == list(range(8))
    stranger = centroid(astronaut_photos()[:4])  # the shipped donor whose eyes are found: the astronaut
    found = [judged(image.data, stranger) for image in painted]
    assert all(faces == 1 and distance < 0.6 and eyes >= 2 for faces, distance, eyes in found), found
    prints = [fingerprint(image.data) for image in painted]
    assert not any(near_duplicates(a, b) for a, b in itertools.combinations(prints, 2))


async def test_a_style_without_a_framing_is_painted_as_any_picture_and_a_stranger_has_only_a_strangers_defects():
    unframed = {i: StyleSpec(name="plain", prompt="a landscape", params={"backdrop": "white"}) for i in range(2)}
    plain = await painter().generate(stranger_request(2, styles=unframed))
    assert [image.media_type for image in plain] == ["image/png"] * 2
    stranger = centroid(astronaut_photos()[:4])
    two = await painter({"two_faces": 1.0}).generate(stranger_request(2))
    assert [judged(image.data, stranger)[0] for image in two] == [2, 2]
    shut = await painter({"closed_eyes": 1.0}).generate(stranger_request(2))
    assert all(faces == 1 and eyes < 2 for faces, _, eyes in (judged(image.data, stranger) for image in shut))
    # Another person and drift need a subject to be mistaken for: a stranger is painted clean.
    clean = await painter({"another_person": 0.5, "drift": 0.5}).generate(stranger_request(4))
    assert all(faces == 1 and distance < 0.6 and eyes >= 2
               for faces, distance, eyes in (judged(image.data, stranger) for image in clean))
