"""Judging a subject's photos, as pure logic: one person in every photo (the odd one out refused
with its distance, first, middle or last), repeats, a product's foreground, the room a subject
has, and how its state moves with its photos and its identity events."""

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from services.common.contracts import IdentityPlanned, IdentityTrained, IdentityTrainingFailed, IdentityUse
from services.common.quality.profiles import eyes_waiver
from services.common.templates import load_catalogue
from services.ingest.subjects.domain import identity_move, photo_set_sha256, state_after_photos
from services.ingest.subjects.judging import (
    MAX_PHOTOS,
    JudgedAgainst,
    Kept,
    Offered,
    PhotoMeasures,
    centroid_of,
    judged,
)
from services.ingest.subjects.views import waived_checks

RNG = np.random.default_rng(7)
ADA, GRACE = RNG.normal(0, 0.08, 128), RNG.normal(0, 0.08, 128)
GOOD = {"faces": 1.0, "face_size": 0.1, "sharpness": 300.0, "exposure": 0.4}
PERSON = JudgedAgainst(kind="person", checks=load_catalogue().subject_checks("person"))


def fingerprint(i: int) -> str:
    """A fingerprint of its own for each i: random bits, about 32 apart from any other's."""
    return f"{int(np.random.default_rng(1000 + i).integers(0, 2**63)):016x}"


def photo(i: int, face=ADA, **values) -> Offered:
    embedding = tuple(face + RNG.normal(0, 0.01, 128))
    return Offered(sha256=f"sha{i}", source=f"photos[{i}]", measured=PhotoMeasures(values=GOOD | values, width=512, height=512,
                                                       fingerprint=fingerprint(i), embedding=embedding))


def test_eight_photos_of_one_person_are_all_accepted():
    verdicts = judged(PERSON, [photo(i) for i in range(8)])
    assert all(v.accepted for v in verdicts), [v.reasons for v in verdicts]
    assert [v.n for v in verdicts] == list(range(1, 9))
    assert all(v.identity_distance is not None and v.identity_distance < 0.6 for v in verdicts)


@pytest.mark.parametrize("odd", [0, 3, 7], ids=["first", "middle", "last"])
def test_another_person_is_refused_with_its_distance_wherever_it_stands(odd):
    offered = [photo(i, GRACE if i == odd else ADA) for i in range(8)]
    verdicts = judged(PERSON, offered)
    refused = [v for v in verdicts if not v.accepted]
    assert [v.n for v in refused] == [odd + 1]
    assert refused[0].identity_distance >= 0.6
    assert refused[0].reasons == [f"another person: identity {refused[0].identity_distance:.2f} from the subject's"
                                  " other photos; at most 0.6"]


def test_a_new_photo_is_held_to_the_person_the_subject_already_has():
    kept = [Kept(n=i + 1, sha256=f"k{i}", fingerprint=fingerprint(i + 20), embedding=tuple(ADA)) for i in range(4)]
    verdicts = judged(JudgedAgainst(kind="person", checks=PERSON.checks, kept=kept), [photo(30, GRACE), photo(31, GRACE), photo(32, ADA)])
    assert [v.accepted for v in verdicts] == [False, False, True]
    assert [v.n for v in verdicts] == [5, 6, 7]


def test_new_photos_are_numbered_after_a_refused_one_that_came_last():
    kept = [Kept(n=i + 1, sha256=f"k{i}", fingerprint=fingerprint(i + 20), embedding=tuple(ADA)) for i in range(4)]
    verdicts = judged(JudgedAgainst(kind="person", checks=PERSON.checks, kept=kept, last_n=5), [photo(40), photo(41, GRACE)])
    assert [(v.n, v.accepted) for v in verdicts] == [(6, True), (7, False)]


def test_two_faces_and_a_blurred_photo_fail_their_checks_with_sentences():
    two, blurred = judged(PERSON, [photo(0, faces=2.0), photo(1, sharpness=3.0)])
    assert not two.accepted and "shows 2 faces" in two.reasons[0]
    assert not blurred.accepted and "blurred" in blurred.reasons[0]
    assert blurred.checks[0]["dimension"] == "sharpness"


def test_a_repeat_or_a_near_duplicate_is_refused_naming_the_photo_it_repeats():
    first = photo(0)
    same = Offered(sha256="sha0", source="photos[1]", measured=first.measured)
    near = Offered(sha256="other", source="photos[2]", measured=PhotoMeasures(values=GOOD, width=512, height=512,
                                                  fingerprint=f"{int(fingerprint(0), 16) ^ 0b111:016x}",
                                                  embedding=first.measured.embedding))
    verdicts = judged(PERSON, [first, same, near])
    assert verdicts[0].accepted
    assert verdicts[1].reasons == ["the same photo as photo 1"] and verdicts[1].repeats == 1
    assert "nearly the same picture as photo 1 (3 of 64" in verdicts[2].reasons[0]


def test_a_small_photo_and_a_file_screening_refused_are_refused():
    small = Offered(sha256="s", source="photos[0]", measured=PhotoMeasures(values=GOOD, width=200, height=900, fingerprint=fingerprint(1),
                                               embedding=tuple(ADA)))
    broken = Offered(sha256="b", source="photos[1]", refused="the image is truncated")
    verdicts = judged(PERSON, [small, broken])
    assert "200×900 pixels" in verdicts[0].reasons[0]
    assert verdicts[1].reasons == ["the image is truncated"]


def test_a_product_must_be_found_and_separated_from_its_background():
    product = JudgedAgainst(kind="product", checks=load_catalogue().subject_checks("product"))

    def shot(i, share, contrast):
        return Offered(sha256=f"p{i}", source=f"photos[{i}]", measured=PhotoMeasures(values={"sharpness": 200.0, "exposure": 0.5}, width=600,
                                                         height=600, fingerprint=fingerprint(i),
                                                         foreground={"share": share, "contrast": contrast}))

    found, filling, flat = judged(product, [shot(0, 0.4, 20.0), shot(1, 0.97, 20.0), shot(2, 0.4, 1.0)])
    assert found.accepted
    assert not filling.accepted and not flat.accepted
    assert "could not be told from its background" in flat.reasons[0]


def test_a_subject_takes_at_most_thirty_photos():
    kept = [Kept(n=i + 1, sha256=f"k{i}", fingerprint=fingerprint(i + 40), embedding=tuple(ADA))
            for i in range(MAX_PHOTOS - 1)]
    verdicts = judged(JudgedAgainst(kind="person", checks=PERSON.checks, kept=kept), [photo(0), photo(1)])
    assert verdicts[0].accepted and verdicts[1].reasons == ["the subject has 30 photos, the most it takes"]


def test_the_centroid_is_the_mean_embedding_as_float32():
    centroid = centroid_of([tuple(ADA), tuple(ADA + 0.1)])
    assert centroid.dtype == np.dtype("<f4") and np.allclose(centroid, ADA + 0.05, atol=1e-6)
    assert centroid_of([]) is None


def test_states_move_with_photos():
    assert state_after_photos("screening", 3, photo_set_changed=True) == "screening"
    assert state_after_photos("screening", 4, photo_set_changed=True) == "ready"
    assert state_after_photos("trained", 6, photo_set_changed=True) == "ready"  # a new photo set is trained again
    assert state_after_photos("trained", 5, photo_set_changed=False) == "trained"
    assert photo_set_sha256(["b", "a"]) == photo_set_sha256(["a", "b"]) != photo_set_sha256(["a"])
    assert photo_set_sha256([]) is None


def test_states_move_with_identity_events():
    subject, job = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    use = IdentityUse(subject_id=subject, mode="lora", provider="local", model="trainer")
    planned = IdentityPlanned(job_id=job, tenant_id="t", use=use, trains=True, planned_at=now)
    reused = planned.model_copy(update={"trains": False})
    trained = IdentityTrained(job_id=job, tenant_id="t", subject_id=subject, identity_id=uuid.uuid4(),
                              photo_set_sha256="set", provider="local", model="trainer", weights_key="w",
                              weights_sha256="h", weights_size_bytes=10, trigger_word="glabcdef", cost_micro_usd=5,
                              trained_at=now)
    failed = IdentityTrainingFailed(job_id=job, tenant_id="t", subject_id=subject, identity_id=uuid.uuid4(),
                                    failure_code="provider_error", reason="boom", failed_at=now)
    assert identity_move("ready", "set", event=planned).state == "training"
    assert identity_move("ready", "set", event=reused) is None
    move = identity_move("training", "set", event=trained)
    assert move.state == "trained" and move.identity.weights_sha256 == "h"
    assert identity_move("training", "newer", event=trained).state == "ready"  # photos changed while it trained
    assert identity_move("training", "set", event=failed).state == "failed"
    assert identity_move("erased", "set", event=trained) is None


def rows(eyes: list, *, refused: int = 0) -> list[dict]:
    """Photo rows as stored: the accepted ones with the eyes counted in them (a missing key: a
    photo kept before eyes were counted), then `refused` refused ones with none counted."""
    kept = [{"accepted": True, "verdict": {} if count == "unknown" else {"eyes": count}} for count in eyes]
    return kept + [{"accepted": False, "verdict": {"eyes": 0.0}}] * refused


def test_a_person_is_told_their_eyes_will_not_be_checked_by_the_rule_the_scorer_judges_with():
    assert waived_checks("person", rows([2.0, 2.0, 1.0, 0.0], refused=3)) == [], "two of four: held to them"
    [waived] = waived_checks("person", rows([2.0, 1.0, 0.0, 0.0, 3.0]))
    assert waived.dimension == "eyes_open"
    assert waived.reason == eyes_waiver(faced=5, eyes_seen=2) and "only 2 of the subject's 5 photos" in waived.reason
    assert waived_checks("person", rows([0.0, 0.0, 0.0, "unknown"])) == [], "not counted in one photo: not said"
    assert waived_checks("person", rows([0.0, None, 0.0, 0.0])) == [], "no eye detector: not said"
    assert waived_checks("product", rows([0.0, 0.0, 0.0, 0.0])) == []
    assert waived_checks("person", rows([], refused=4)) == []
