"""dlib's face ResNet run by torch gives dlib's own descriptors: the same 128 numbers, to
float32 rounding, for every face the scorer and the portrait model embed; and a model file
of another shape is refused, leaving dlib to embed."""

import dlib
import numpy as np
import pytest

from services.common import face_models, face_resnet
from services.scorer.dimensions.faces import find_faces
from tests.scorer import planted
from tests.scorer.test_faces import grace_hopper


def faces_of(pictures):
    found = []
    for rgb in pictures:
        face = find_faces(np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8))).single
        assert face is not None
        found.append((np.ascontiguousarray(rgb), face))
    return found


def dlib_descriptors(faces):
    folder = face_models.models_dir()
    predictor = dlib.shape_predictor(str(folder / face_models.LANDMARKS_FILE))
    encoder = dlib.face_recognition_model_v1(str(folder / face_models.EMBEDDING_FILE))
    return [np.asarray(encoder.compute_face_descriptor(rgb, predictor(rgb, face_models._rectangle(face))))
            for rgb, face in faces]


def test_the_descriptors_are_dlibs_own_and_the_same_alone_or_together():
    faces = faces_of([*planted.clean_candidates(), planted.bulged(planted.astronaut(), 0.4), grace_hopper()])
    expected = dlib_descriptors(faces)
    together = face_models.face_embeddings(faces)
    alone = [face_models.face_embedding(rgb, face) for rgb, face in faces]
    for ours, one, theirs in zip(together, alone, expected, strict=True):
        assert ours.shape == (128,)
        assert np.abs(ours - theirs).max() < 1e-5
        assert np.array_equal(one, ours), "a face's descriptor is the same whichever faces are beside it"
    assert face_resnet.loaded(face_models.models_dir() / face_models.EMBEDDING_FILE) is not None, "torch ran them"


def test_two_people_stay_apart_and_one_stays_together():
    astronaut, again, hopper = faces_of([planted.clean_candidates()[0], planted.astronaut(), grace_hopper()])
    mine, again, theirs = face_models.face_embeddings([astronaut, again, hopper])
    assert np.linalg.norm(mine - again) < 0.3
    assert np.linalg.norm(mine - theirs) > 0.6


def test_a_model_file_of_another_shape_is_refused(tmp_path):
    original = (face_models.models_dir() / face_models.EMBEDDING_FILE).read_bytes()
    at = original.index(b"\x01\x05con_4") + 7
    altered = tmp_path / face_models.EMBEDDING_FILE
    # The stem's tensor declared one value short: its size no longer fits a 7×7 convolution of 32.
    altered.write_bytes(original[:at] + b"\x01\x02\x02\x7f\x12" + original[at + 5:])
    with pytest.raises(face_resnet.UnknownModel, match="a tensor of 4735 values where 4736 were expected"):
        face_resnet.read(altered)
    (tmp_path / "truncated.dat").write_bytes(original[: len(original) // 2])
    with pytest.raises(face_resnet.UnknownModel, match="the file ends inside a tensor"):
        face_resnet.read(tmp_path / "truncated.dat")


@pytest.mark.parametrize("missing", ["torch", "the network"])
def test_without_torch_or_a_network_it_reads_dlib_embeds(monkeypatch, missing):
    monkeypatch.setattr(face_resnet, "_loaded", {})
    if missing == "torch":
        monkeypatch.setattr(face_resnet, "torch", None)
    else:
        monkeypatch.setattr(face_resnet, "read", lambda path: (_ for _ in ()).throw(face_resnet.UnknownModel(path)))
    faces = faces_of(planted.clean_candidates()[:2])
    for ours, theirs in zip(face_models.face_embeddings(faces), dlib_descriptors(faces), strict=True):
        assert np.abs(ours - theirs).max() < 1e-5
    assert face_resnet.loaded(face_models.models_dir() / face_models.EMBEDDING_FILE) is None
