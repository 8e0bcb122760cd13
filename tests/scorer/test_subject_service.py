"""Orders of a subject through the scorer service, on the real broker, PostgreSQL and S3: the
subject's photos sealed in the internal bucket and its centroid sealed in the job, their key
answered by a small HTTP server at ingest's data-key path; chunks and attempts in, what the
scorer decides out (tests/scorer/test_service.py shows the harness)."""

import asyncio
import base64
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.bus.envelope import envelop
from services.common.contracts import (
    CandidateRef,
    CandidatesChecked,
    CandidatesGenerated,
    CandidatesScored,
    CandidatesStored,
    JobSpec,
    RegenerationRequested,
    ScoringFailed,
    StyleSpec,
    SubjectPhoto,
    SubjectRef,
)
from services.common.data_keys import DataKeys
from services.common.quality.fingerprints import near_duplicates
from services.common.sealing import SubjectField, new_data_key, seal_bytes, seal_subject_text
from services.common.settings import SealedContentSettings
from services.common.storage import Blob, ObjectStore
from services.scorer.subjects import ERASED, Likenesses, SubjectUnavailable
from tests.router.stubs import serve
from tests.scorer import planted
from tests.scorer.conftest import png
from tests.scorer.test_service import ScorerUnderTest, running_scorer

pytestmark = pytest.mark.processes  # runs a Genline service

TENANT = "t-subjects"
STYLES = [StyleSpec(name="studio", prompt="grey studio backdrop"), StyleSpec(name="window", prompt="window light")]


@dataclass
class KeyServer:
    """Ingest's subject data-key route as the scorer calls it: a key per subject, 404 once erased."""

    keys: dict[str, bytes] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def data_key(request: Request) -> Response:
            key = self.keys.get(request.path_params["subject_id"])
            if key is None:
                return JSONResponse({"title": "unknown subject"}, status_code=404)
            return JSONResponse({"key": base64.b64encode(key).decode()})

        return Starlette(routes=[Route("/internal/v1/subjects/{subject_id}/data-key", data_key)])


@pytest.fixture(scope="module")
def key_server() -> Iterator[tuple[KeyServer, str]]:
    server = KeyServer()
    with serve(server.app()) as url:
        yield server, url


@pytest.fixture(scope="module")
def subject_scorer(endpoints, object_store, tmp_path_factory, key_server) -> Iterator[ScorerUnderTest]:
    yield from running_scorer(endpoints, object_store, tmp_path_factory.mktemp("subject-scorer-logs"),
                              GENLINE_DATA_KEY_URL=key_server[1], GENLINE_DATA_KEY_CACHE_S="1")


def sealed_subject(store: ObjectStore, keys: KeyServer, photos: list[bytes]) -> SubjectRef:
    """A person of these photos, as ingest keeps one: each photo sealed with the subject's key
    under its hash, the centroid of their faces sealed into the reference."""
    subject_id, key = uuid.uuid4(), new_data_key()
    keys.keys[str(subject_id)] = key
    kept = []
    for photo in photos:
        sha = hashlib.sha256(photo).hexdigest()
        object_key = f"subjects/{TENANT}/{subject_id}/{sha}"
        sealed = seal_bytes(key, SubjectField(subject_id, f"photo/{sha}"), data=photo)
        asyncio.run(store.put(store.internal_bucket, object_key, content=Blob(sealed, "application/octet-stream")))
        kept.append(SubjectPhoto(key=object_key, sha256=sha, media_type="image/png", width=512, height=512))
    centroid = seal_subject_text(key, SubjectField(subject_id, "centroid"),
                                 text=planted.centroid_text(planted.centroid_of(photos)))
    photo_set = hashlib.sha256("\n".join(sorted(p.sha256 for p in kept)).encode()).hexdigest()
    return SubjectRef(subject_id=subject_id, kind="person", name="Eileen", photos=kept, photo_set_sha256=photo_set,
                      centroid=centroid, trigger_word="glqwerty")


def order(job_id, subject, *, images, candidates, **fields) -> JobSpec:
    return JobSpec(job_id=job_id, tenant_id=TENANT, template="generic", profile="subject-headshot", prompt="a headshot",
                   images=images, candidates=candidates, seed=1, submitted_at=datetime.now(UTC), subject=subject,
                   styles=STYLES, **fields)


def styled(ref: CandidateRef, style: str) -> CandidateRef:
    return ref.model_copy(update={"style": style})


def generated(spec: JobSpec, candidates, *, number=1, final=False):
    return envelop(CandidatesGenerated(job_id=spec.job_id, tenant_id=TENANT, attempt=number, images=spec.images,
                                       started_at=datetime.now(UTC), candidates=candidates, cost_micro_usd=100,
                                       final=final, job=spec), "/test/router")


def stored(spec: JobSpec, candidates, planned):
    return envelop(CandidatesStored(job_id=spec.job_id, tenant_id=TENANT, attempt=1, images=spec.images,
                                    candidates=candidates, planned=planned, stored=len(candidates), job=spec),
                   "/test/router")


@pytest.fixture(scope="module")
def subject(subject_scorer, key_server) -> SubjectRef:
    return sealed_subject(subject_scorer.store, key_server[0], planted.subject_photos())


def test_every_planted_defect_is_rejected_with_its_reason_and_the_clean_ones_ship(subject_scorer, subject):
    """Measured in full (score_all), so each defect shows every reason it has, a chunk first
    and the attempt's close after it."""
    job = uuid.uuid4()
    found = planted.defects(0.44)
    clean = [png(c) for c in planted.clean_candidates()[:2]]
    images = [*clean, found.another_person, found.subject_twice, found.subject_and_another, found.closed_eyes,
              found.drifted]
    refs = [styled(subject_scorer.put(job, i, data), STYLES[i % 2].name) for i, data in enumerate(images)]
    spec = order(job, subject, images=2, candidates=len(refs), quality_rules={"score_all": True})
    subject_scorer.publish(stored(spec, refs[:4], planned=len(refs)))
    subject_scorer.publish(generated(spec, refs))

    checked, scored = subject_scorer.outcomes(job, want=2)
    assert isinstance(checked, CandidatesChecked) and isinstance(scored, CandidatesScored), scored
    scores = {s.index: s for s in [*checked.scores, *scored.scores]}
    assert sorted(scored.selected) == [0, 1]
    assert all(s.fingerprint is not None and s.style == STYLES[s.index % 2].name for s in scores.values())
    another, twice, pair, closed, drifted = (scores[i] for i in range(2, 7))
    assert "identity" in another.failed
    assert "(the face is not the subject's person); against the centroid of the subject's 6 photos" in (
        another.dimensions["identity"].reason)
    assert "faces" in twice.failed and twice.dimensions["faces"].value == 2
    assert "second_person" in pair.failed and "another person's face" in pair.dimensions["second_person"].reason
    assert closed.failed == ["eyes_open"]
    assert drifted.failed == ["identity"] and drifted.dimensions["identity"].value > 0.6


def test_styles_keep_their_shares_and_a_near_duplicate_of_an_earlier_attempt_is_never_selected(subject_scorer,
                                                                                                 subject):
    job = uuid.uuid4()
    clean = [png(c) for c in planted.clean_candidates()]
    found = planted.defects(0.44)
    first = [styled(subject_scorer.put(job, 0, clean[0]), "studio"), styled(subject_scorer.put(job, 1, clean[1]), "studio"),
             styled(subject_scorer.put(job, 2, clean[2]), "window"),
             styled(subject_scorer.put(job, 3, found.closed_eyes), "window")]
    spec = order(job, subject, images=4, candidates=4)
    subject_scorer.publish(generated(spec, first))
    [regeneration] = subject_scorer.outcomes(job)
    assert isinstance(regeneration, RegenerationRequested), regeneration
    assert regeneration.needed_by_style == {"window": 1} and regeneration.needed == 1
    assert "styles short: window 1" in regeneration.reason

    again = planted.jpeg_again(clean[2], quality=95)  # the window's selected picture, encoded again, a little better
    second = [styled(subject_scorer.put(job, 4, again, media_type="image/jpeg"), "window"),
              styled(subject_scorer.put(job, 5, clean[3]), "window")]
    subject_scorer.publish(generated(spec, second, number=2))
    _, scored = subject_scorer.outcomes(job, want=2)
    assert isinstance(scored, CandidatesScored), scored
    by_index = {s.index: s for s in [*regeneration.scores, *scored.scores]}
    assert by_index[4].passed and near_duplicates(by_index[4].fingerprint, by_index[2].fingerprint)
    assert len(scored.selected) == 4 and {0, 1, 5} <= set(scored.selected)
    assert len({2, 4} & set(scored.selected)) == 1, "a picture and its copy are never both selected"
    assert sorted(s.style for s in scored.selected_scores) == ["studio", "studio", "window", "window"]


def test_an_erased_subject_fails_its_job_with_the_reason(subject_scorer, key_server):
    keys = key_server[0]
    gone = sealed_subject(subject_scorer.store, keys, planted.subject_photos()[:4])
    del keys.keys[str(gone.subject_id)]  # erased: ingest answers 404
    job = uuid.uuid4()
    spec = order(job, gone, images=1, candidates=1)
    subject_scorer.publish(generated(spec, [subject_scorer.put(job, 0, png(planted.astronaut()))]))
    [failed] = subject_scorer.outcomes(job)
    assert isinstance(failed, ScoringFailed) and failed.failure_code == "subject_erased"
    assert "was erased" in failed.reason and "no candidate can be checked against it" in failed.reason


class KeysOnly(SealedContentSettings):
    """What the scorer's DataKeys read, without its object store's settings."""

    uses_object_store: ClassVar[bool] = False


def test_a_subject_is_opened_once_for_all_its_orders_and_never_once_erased(endpoints, object_store, key_server):
    """What the scorer keeps of a subject (its likeness) serves every chunk, attempt and later
    order; the key is asked for each time, so an erasure is seen at the next one."""
    keys, url = key_server
    ref = sealed_subject(object_store, keys, planted.subject_photos()[:4])
    settings = KeysOnly(database_url=endpoints.database_url, data_key_url=url, data_key_cache_s=0.0)
    subjects = Likenesses(objects=object_store, data_keys=DataKeys(settings, "scorer"), keep_s=600)

    async def twice_then_erased():
        first, second = await subjects.likeness(ref), await subjects.likeness(ref)
        del keys.keys[str(ref.subject_id)]
        with pytest.raises(SubjectUnavailable) as erased:
            await subjects.likeness(ref)
        return first, second, erased.value

    first, second, erased = asyncio.run(twice_then_erased())
    assert second is first and first.photos == 4 and first.centroid is not None and first.faced == 4
    assert erased.code == ERASED and "was erased" in str(erased)
