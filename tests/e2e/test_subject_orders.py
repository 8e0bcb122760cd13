"""A headshot order of a subject through the running services, trained by the local trainer and
painted by the local portrait model: a subject from eight photos of one person (the stack's
demo portrait, framed eight ways) with a ninth of someone else (matplotlib's Grace Hopper
sample) refused with its distance, made as `make run`'s subject demo makes it; then 12 pictures across the six styles of
`subject-headshots` from 48 candidates, with the identity trained for the order. It succeeds;
every delivered picture is the subject (identity against its centroid) with its eyes open and
alone; each style keeps its share; no two delivered pictures are near-duplicates; whatever
candidate the portrait model spoiled (its planted defects) is refused with its reason; the
receipt names the subject and its trained identity, never a photo. The same order of no subject
(`styled-headshots`) is painted as a stranger in each style, held to the face checks and not
the subject's."""

import itertools
from collections import Counter

import pytest

from genline_stack.demo_subject import make_subject
from services.common.quality.fingerprints import NEAR_DUPLICATE_BITS, distance
from services.common.quality.profiles import load_profile, with_subject_checks
from services.ingest.jobs.scoring_checks import profile_version
from tests.e2e.conftest import make_tenant

IMAGES, CANDIDATES = 12, 48
# What a candidate of the local portrait model fails when a defect was planted in it: another
# person or a drifted face (identity, skin tone), two faces (faces, second_person), closed eyes.
SUBJECT_DIMENSIONS = {"identity", "skin_tone", "faces", "second_person", "eyes_open"}


@pytest.fixture(scope="module")
def ordered(endpoints, platform):
    """The subject (eight photos and Grace Hopper's ninth), its order settled, and its tenant."""
    tenant = make_tenant(endpoints, platform, 20_000)
    said: list[str] = []
    subject = make_subject(tenant.http, said.append)  # as `make run`'s demo makes its subject
    assert said[1].startswith("  photo 5 refused: another person: identity"), said
    job_id = tenant.submit(prompt="professional headshot", template="subject-headshots", subject=subject["id"],
                           identity="lora", images=IMAGES, candidates=CANDIDATES)
    job = tenant.wait_settled([job_id], timeout_s=600)[job_id]
    yield tenant, subject, job
    tenant.http.close()


def test_a_ninth_photo_of_someone_else_is_refused_with_its_distance(ordered):
    _, subject, _ = ordered
    assert (subject["state"], subject["photos_accepted"], subject["photos_refused"]) == ("ready", 8, 1)
    refused = [photo for photo in subject["photos"] if not photo["accepted"]]
    assert [photo["source"] for photo in refused] == ["photos[4]"]
    assert refused[0]["identity_distance"] > 0.6
    assert refused[0]["reasons"] == [f"another person: identity {refused[0]['identity_distance']:.2f} from the"
                                     " subject's other photos; at most 0.6"]


def test_the_order_trains_the_identity_and_delivers_the_subject_in_every_style(ordered):
    tenant, subject, job = ordered
    assert job["state"] == "succeeded", job.get("failure")
    assert len(job["outputs"]) == IMAGES and len(job["selected"]) == IMAGES
    identity = job["subject"]["identity"]
    assert job["subject"]["training"] == "trained" and identity["mode"] == "lora"
    assert identity["model"] == "local-lora-trainer" and len(identity["weights_sha256"]) == 64
    assert job["billing"]["training"]["state"] == "charged"
    assert tenant.http.get(f"/v1/subjects/{subject['id']}").json()["state"] == "trained"
    # Scored as an order of a person is, whatever the profile names, and the version says so.
    assert job["scoring_profile"] == "subject-headshot"
    assert job["profile_version"] == profile_version(with_subject_checks(load_profile("subject-headshot"), "person"))

    chosen = [s for s in job["scores"] if s["index"] in job["selected"]]
    assert len(chosen) == IMAGES and all(s["passed"] for s in chosen), "every delivered picture passed"
    for score in chosen:
        assert score["dimensions"]["identity"]["value"] < 0.6, score["dimensions"]["identity"]
        assert score["dimensions"]["eyes_open"]["passed"] and score["dimensions"]["second_person"]["passed"]
    assert Counter(s["style"] for s in chosen) == dict.fromkeys(job["styles"], IMAGES // 6)
    assert len(job["styles"]) == 6
    for a, b in itertools.combinations(chosen, 2):
        assert distance(a["fingerprint"], b["fingerprint"]) > NEAR_DUPLICATE_BITS, (a["index"], b["index"])
    spoiled = [s for s in job["scores"] if s["judged"] and not s["passed"]]
    for score in spoiled:  # a refused candidate (a planted defect, or any other check) says why
        assert score["failed"] and all(score["dimensions"][name]["reason"] for name in score["failed"])
    for score in chosen:  # every delivered picture was judged against the subject on every subject check
        assert SUBJECT_DIMENSIONS <= set(score["dimensions"]), score["dimensions"].keys()


def test_the_receipt_names_the_subject_and_its_trained_identity_never_a_photo(ordered):
    tenant, subject, job = ordered
    receipt = tenant.http.get(f"/v1/jobs/{job['id']}/receipt").json()["receipt"]
    named = receipt["subject"]
    assert (named["id"], named["kind"], named["photo_set_sha256"]) == (subject["id"], "person",
                                                                       subject["photo_set_sha256"])
    assert named["identity"]["mode"] == "lora" and named["identity"]["model"] == "local-lora-trainer"
    assert named["identity"]["weights_sha256"] == job["subject"]["identity"]["weights_sha256"]
    assert "photos" not in named
    assert receipt["credits"]["training"]["charged"] == 300


def test_the_same_order_of_no_subject_is_a_stranger_in_every_style_held_to_every_check_but_the_subjects(endpoints, platform):
    tenant = make_tenant(endpoints, platform, 5_000)
    images = 6
    job_id = tenant.submit(prompt="professional headshot", template="styled-headshots", images=images, candidates=4 * images)
    job = tenant.wait_settled([job_id], timeout_s=600)[job_id]
    tenant.http.close()
    assert job["state"] == "succeeded", job.get("failure")
    assert job["scoring_profile"] == "styled-headshot" and not job.get("subject")
    assert job["billing"]["charged"] == images * 20  # a headshot's price a delivered picture
    chosen = [s for s in job["scores"] if s["index"] in job["selected"]]
    assert Counter(s["style"] for s in chosen) == dict.fromkeys(job["styles"], 1) and len(job["styles"]) == 6
    for score in chosen:  # a face the scorer finds, alone, eyes open; nothing to compare it with
        dimensions = score["dimensions"]
        assert dimensions["faces"]["value"] == 1 and dimensions["eyes_open"]["passed"], dimensions
        assert not {"identity", "skin_tone", "second_person"} & set(dimensions), dimensions.keys()
