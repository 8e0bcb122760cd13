"""The scorer service as a process on the real broker, PostgreSQL and S3: photographs and
degraded copies go into the internal bucket, CandidatesGenerated onto the router topic,
and what the scorer decides is read back from its own topic."""

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from genline_stack.embedded import create_topics
from genline_stack.fleet import ServiceFleet
from services.common import video
from services.common.bus.envelope import Envelope, envelop, from_kafka
from services.common.contracts import (
    CandidateRef,
    CandidatesChecked,
    CandidatesGenerated,
    CandidatesScored,
    CandidatesStored,
    JobSpec,
    RegenerationRequested,
    ScoringFailed,
    all_topics,
    topic_of,
)
from services.common.storage import Blob
from tests.kafka import publish_envelopes, read_topic
from tests.metrics import metric_value
from tests.scorer.conftest import blown_out, blurred, jpeg, noisy, png, rgb_photo, save_tiny_clip
from tests.scorer.test_video import ASKED, drift, encode
from tests.transactions import watch_idle_in_transaction

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

BLACK = png(rgb_photo("camera") * 0)


@dataclass
class ScorerUnderTest:
    namespace: str
    bootstrap: str
    store: object
    url: str
    database_url: str
    application_name: str  # what the scorer's database sessions are called

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.url, name, **labels)

    def put(self, job_id: uuid.UUID, index: int, data: bytes, provider: str = "local",
            media_type: str = "image/png") -> CandidateRef:
        key = f"test/{job_id}/{index}"
        asyncio.run(self.store.put(self.store.internal_bucket, key, content=Blob(data, media_type)))
        return CandidateRef(index=index, key=key, media_type=media_type, size_bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), width=0, height=0, provider=provider,
                            cost_micro_usd=100)

    def publish(self, *envelopes: Envelope) -> None:
        topic = topic_of("router", self.namespace)
        asyncio.run(publish_envelopes(self.bootstrap, envelopes, lambda _: topic))

    def outcomes(self, job_id: uuid.UUID, want: int = 1, timeout_s: float = 90) -> list:
        """The scorer's events for the job, once `want` of them have arrived (and anything
        more, which would be a duplicate, had a moment to show up)."""
        records = asyncio.run(read_topic(self.bootstrap, topic_of("scorer", self.namespace), want, timeout_s,
                                         keep=lambda r: r.key == str(job_id).encode(), settle_s=1.5))
        return [from_kafka(r).event for r in records]


def running_scorer(endpoints, object_store, log_dir, **env: str) -> Iterator[ScorerUnderTest]:
    """A scorer process on topics and a schema of its own."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"s{suffix}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    fleet = ServiceFleet(endpoints=endpoints, log_dir=log_dir, extra_env={
        "GENLINE_ENVIRONMENT": "test", "GENLINE_TOPIC_NAMESPACE": namespace,
        "GENLINE_SCHEMA_NAME": f"scorer_{suffix}", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "PGAPPNAME": f"scorer-{suffix}",
    } | env)
    try:
        fleet.start("scorer")
        fleet.wait_ready("scorer")
        yield ScorerUnderTest(namespace, endpoints.kafka_bootstrap, object_store, fleet.url("scorer"),
                              endpoints.database_url, f"scorer-{suffix}")
    finally:
        fleet.stop_all()


@pytest.fixture(scope="module")
def scorer_service(endpoints, object_store, tmp_path_factory) -> Iterator[ScorerUnderTest]:
    yield from running_scorer(endpoints, object_store, tmp_path_factory.mktemp("scorer-logs"))


def attempt(job_id, candidates, *, images=1, number=1, final=False, stop_reason=None, spec=True, **job):
    spec_fields = {"template": "generic", "prompt": "a photograph"} | job
    job_spec = JobSpec(job_id=job_id, tenant_id="t-scorer", images=images, candidates=len(candidates) or 1, seed=1,
                       submitted_at=datetime.now(UTC), **spec_fields) if spec else None
    event = CandidatesGenerated(job_id=job_id, tenant_id="t-scorer", attempt=number, images=images,
                                started_at=datetime.now(UTC), candidates=candidates, cost_micro_usd=100,
                                final=final, stop_reason=stop_reason, job=job_spec)
    return envelop(event, "/test/router")


def test_the_originals_pass_generic_and_the_best_k_are_selected_once(scorer_service):
    job = uuid.uuid4()
    names = ("astronaut", "coffee", "chelsea", "camera")
    refs = [scorer_service.put(job, i, png(rgb_photo(name))) for i, name in enumerate(names)]
    submitted = attempt(job, refs, images=3, spec=False)  # no job spec: the generic profile
    scorer_service.publish(submitted, submitted)  # redelivered: judged once

    [scored] = scorer_service.outcomes(job)
    assert isinstance(scored, CandidatesScored)
    assert all(s.passed for s in scored.scores), [(s.index, s.failed) for s in scored.scores]
    assert len(scored.selected) == 3 and set(scored.selected) <= {0, 1, 2, 3}
    ranked = sorted(scored.scores, key=lambda s: -s.score)
    assert scored.selected == [s.index for s in ranked[:3]]
    assert {"sharpness", "noise", "blockiness", "exposure", "clipping", "blank"} <= set(scored.scores[0].dimensions)
    alignment = scored.scores[0].dimensions["prompt_alignment"]
    assert alignment.value is None and "no CLIP model" in alignment.reason


def test_degraded_copies_fail_their_dimension_and_a_final_attempt_fails_the_job_with_reasons(scorer_service):
    job = uuid.uuid4()
    coffee = rgb_photo("coffee")
    degraded = {"sharpness": png(blurred(coffee, 8)), "blockiness": jpeg(coffee, 2), "noise": png(noisy(coffee, 0.15)),
                "blank": BLACK, "clipping": png(blown_out(coffee))}
    refs = [scorer_service.put(job, i, data) for i, data in enumerate(degraded.values())]
    counted = {d: scorer_service.metric("genline_dimension_failures_total", profile="generic", dimension=d)
               for d in degraded}
    rejected = scorer_service.metric("genline_candidates_scored_total", profile="generic", verdict="rejected")
    scorer_service.publish(attempt(job, refs, images=2, final=True, stop_reason="cost cap reached"))

    [failed] = scorer_service.outcomes(job)
    assert isinstance(failed, ScoringFailed) and failed.failure_code == "no_candidate_passed"
    by_index = {s.index: s for s in failed.scores}
    for index, dimension in enumerate(degraded):
        assert dimension in by_index[index].failed, (dimension, by_index[index].failed)
        assert not by_index[index].dimensions[dimension].passed
    assert failed.reason.startswith("no candidate passed: ")
    for dimension in degraded:
        assert f"failed {dimension} ({dimension} " in failed.reason
    assert failed.reason.endswith("; generation stopped: cost cap reached")
    # Pass rates per dimension, for dashboards: each rejection is counted against its dimension.
    for dimension in degraded:
        now = scorer_service.metric("genline_dimension_failures_total", profile="generic", dimension=dimension)
        assert now >= counted[dimension] + 1, dimension
    assert scorer_service.metric("genline_candidates_scored_total", profile="generic",
                                 verdict="rejected") == rejected + len(degraded)


def test_the_astronaut_passes_headshot_and_the_cat_fails_it(scorer_service):
    job = uuid.uuid4()
    refs = [scorer_service.put(job, 0, png(rgb_photo("chelsea"))), scorer_service.put(job, 1, png(rgb_photo("astronaut")))]
    reference = scorer_service.put(job, 99, png(rgb_photo("astronaut"))).key  # the photo the job was given
    scorer_service.publish(attempt(job, refs, images=1, template="headshot", reference_key=reference))

    [scored] = scorer_service.outcomes(job)
    assert isinstance(scored, CandidatesScored) and scored.selected == [1]
    cat, astronaut = sorted(scored.scores, key=lambda s: s.index)
    assert astronaut.passed and astronaut.dimensions["faces"].value == 1
    assert astronaut.dimensions["skin_tone"].value == 0  # compared with itself
    assert not cat.passed and "faces" in cat.failed


def test_passing_candidates_accumulate_across_attempts(scorer_service):
    job = uuid.uuid4()
    coffee, camera = rgb_photo("coffee"), rgb_photo("camera")
    first = [scorer_service.put(job, 0, png(coffee)), scorer_service.put(job, 1, png(blurred(coffee, 8)))]
    scorer_service.publish(attempt(job, first, images=2))
    [regeneration] = scorer_service.outcomes(job)
    assert isinstance(regeneration, RegenerationRequested)
    assert (regeneration.attempt, regeneration.passed, regeneration.needed) == (1, 1, 1)
    assert [s.index for s in regeneration.scores] == [0, 1]
    assert "1 failed sharpness" in regeneration.reason

    second = [scorer_service.put(job, 2, BLACK, provider="other"), scorer_service.put(job, 3, png(camera), "other")]
    scorer_service.publish(attempt(job, second, images=2, number=2))
    _, scored = scorer_service.outcomes(job, want=2)
    assert isinstance(scored, CandidatesScored) and scored.attempt == 2
    assert sorted(scored.selected) == [0, 3]
    # The selection carries the scores published for the first time (this attempt's) and the
    # selected ones, the first attempt's among them, by name.
    assert {(s.index, s.attempt, s.provider, s.passed) for s in scored.scores} == {
        (2, 2, "other", False), (3, 2, "other", True)}
    assert {(s.index, s.attempt, s.provider) for s in scored.selected_scores} == {(0, 1, "local"), (3, 2, "other")}


def test_tiers_deliver_what_measuring_every_dimension_delivers(scorer_service):
    """The same eight paintings (a third blurred or blank) as two jobs of K = 2: one scored
    tier by tier, one asking for every dimension (`score_all`). Both select the same two;
    the tiered job left the rejected and the unneeded candidates' moderation unmeasured."""
    from services.router.providers.local.painter import CandidateRange, LocalGenerator

    painted = LocalGenerator(256, 256, defect_rate=0.34).paint(CandidateRange(prompt="a lighthouse at dusk", seed=11, count=8))
    tiered, everything = uuid.uuid4(), uuid.uuid4()
    judged = scorer_service.metric("genline_candidates_scored_total", profile="generic", verdict="passed")
    judged += scorer_service.metric("genline_candidates_scored_total", profile="generic", verdict="rejected")
    for job, rules in ((tiered, None), (everything, {"score_all": True})):
        refs = [scorer_service.put(job, c.index, c.png) for c in painted]
        scorer_service.publish(attempt(job, refs, images=2, quality_rules=rules))
    [by_tiers], [in_full] = scorer_service.outcomes(tiered), scorer_service.outcomes(everything)

    assert isinstance(by_tiers, CandidatesScored) and isinstance(in_full, CandidatesScored)
    assert by_tiers.selected == in_full.selected and len(by_tiers.selected) == 2
    assert all(s.judged and not s.not_measured for s in in_full.scores)
    full = {s.index: s for s in in_full.scores}
    for score in by_tiers.scores:
        defect = painted[score.index].defect
        if defect is not None:  # rejected at Tier 1: moderation never ran
            assert score.judged and not score.passed and score.not_measured == ["nsfw"]
            assert score.dimensions["nsfw"].reason.startswith("nsfw unmeasured: rejected at tier 1 by ")
        elif not score.judged:  # not needed: the two selected outrank it whatever nsfw says
            assert not score.passed and score.failed == [] and score.not_measured == ["nsfw"]
            assert full[score.index].passed
        else:
            assert score.passed == full[score.index].passed and score.score == full[score.index].score
    assert any(not s.judged for s in by_tiers.scores)
    now = scorer_service.metric("genline_candidates_scored_total", profile="generic", verdict="passed")
    now += scorer_service.metric("genline_candidates_scored_total", profile="generic", verdict="rejected")
    assert now == judged + 8 + sum(s.judged for s in by_tiers.scores), "a candidate without a verdict is not counted"


def test_a_final_attempt_with_too_few_passing_delivers_what_passed(scorer_service):
    job = uuid.uuid4()
    refs = [scorer_service.put(job, 0, BLACK), scorer_service.put(job, 1, png(rgb_photo("astronaut")))]
    scorer_service.publish(attempt(job, refs, images=3, final=True, stop_reason="attempts exhausted"))
    [scored] = scorer_service.outcomes(job)
    assert isinstance(scored, CandidatesScored) and scored.selected == [1] and scored.images == 3


def test_rules_the_scorer_cannot_honour_fail_the_job_at_once(scorer_service):
    job = uuid.uuid4()
    scorer_service.publish(attempt(job, [], quality_rules={"require": ["prompt_alignment"]}))
    [failed] = scorer_service.outcomes(job)
    assert isinstance(failed, ScoringFailed) and failed.failure_code == "unscorable_profile"
    assert "prompt_alignment" in failed.reason and "no CLIP model" in failed.reason


def test_no_transaction_stays_open_while_candidates_are_fetched_and_scored(scorer_service):
    """Large candidates take the scorer a second or more; meanwhile none of its database
    sessions may sit idle inside a transaction (holding the job's row and a connection)."""
    job = uuid.uuid4()
    big = np.tile(rgb_photo("astronaut"), (3, 3, 1))  # 1536 pixels square, as sharp as the photo
    refs = [scorer_service.put(job, i, png(np.rot90(big, i).copy())) for i in range(2)]
    with watch_idle_in_transaction(scorer_service.database_url, "application_name = %s",
                                   [scorer_service.application_name]) as seen:
        scorer_service.publish(attempt(job, refs, images=1))
        [scored] = scorer_service.outcomes(job)
    assert isinstance(scored, CandidatesScored) and len(scored.scores) == 2
    assert seen.polls > 0
    assert not seen.held, seen.held[0]


def test_with_a_clip_model_configured_the_service_measures_prompt_alignment(endpoints, object_store,
                                                                            tmp_path_factory):
    """A tiny random CLIP built here stands in for a real one: its similarities mean nothing,
    but they are measured, judged against the threshold, and a job that requires the
    dimension is scored instead of failed as unscorable."""
    clip = save_tiny_clip(tmp_path_factory.mktemp("clip"), tmp_path_factory.mktemp("clip-tokenizer"))
    scorer = running_scorer(endpoints, object_store, tmp_path_factory.mktemp("clip-scorer-logs"),
                            GENLINE_CLIP_MODEL_DIR=str(clip))
    service = next(scorer)
    try:
        job = uuid.uuid4()
        refs = [service.put(job, i, png(rgb_photo(name))) for i, name in enumerate(("astronaut", "coffee"))]
        service.publish(attempt(job, refs, images=1, final=True, prompt="a photograph of a cup of coffee",
                                quality_rules={"require": ["prompt_alignment"], "thresholds": {
                                    "prompt_alignment": {"min": -1.0}}}))
        [outcome] = service.outcomes(job)
        assert isinstance(outcome, CandidatesScored), outcome
        for score in outcome.scores:
            alignment = score.dimensions["prompt_alignment"]
            assert isinstance(alignment.value, float) and -1.0 <= alignment.value <= 1.0, alignment
            assert alignment.threshold == -1.0 and alignment.passed
    finally:
        scorer.close()



def test_a_video_jobs_clips_are_scored_as_clips_by_the_video_profile(scorer_service):
    """A job with a video block (2 s, 1:1, 480p at 24 fps), template generic: its MP4
    candidates are judged by the video profile against that block. The moving clip is
    selected; the still encoded as a clip fails movement; the clip of one second fails its
    container check and nothing else of it is measured."""
    job = uuid.uuid4()
    moving = drift(rgb_photo("astronaut"), 48)
    clips = [encode([moving[0]] * 48), encode(moving), encode(moving[:24])]
    refs = [scorer_service.put(job, i, data, media_type=video.MP4) for i, data in enumerate(clips)]
    scorer_service.publish(attempt(job, refs, images=1, final=True, video=ASKED))

    [scored] = scorer_service.outcomes(job)
    assert isinstance(scored, CandidatesScored) and scored.selected == [1]
    still, clean, short = sorted(scored.scores, key=lambda s: s.index)
    assert clean.passed and clean.media_type == video.MP4
    assert {"container", "duration", "frozen", "movement", "sharpness", "nsfw"} <= set(clean.dimensions)
    assert clean.dimensions["duration"].value == 1.0 and clean.dimensions["movement"].value > 0.05
    assert "movement" in still.failed and "still passed off as a clip" in still.dimensions["movement"].reason
    assert short.failed == ["duration"] and "sharpness" in short.not_measured
    assert short.dimensions["sharpness"].reason == "sharpness unmeasured: rejected at the container check by duration"


def chunk(job_id, candidates, *, images=1, planned=4, stored=None):
    job_spec = JobSpec(job_id=job_id, tenant_id="t-scorer", images=images, candidates=planned, seed=1,
                       submitted_at=datetime.now(UTC), template="generic", prompt="a photograph")
    event = CandidatesStored(job_id=job_id, tenant_id="t-scorer", attempt=1, images=images, candidates=candidates,
                             planned=planned, stored=stored or len(candidates), eta_s=2.0, job=job_spec)
    return envelop(event, "/test/router")


def test_chunks_are_scored_as_they_come_and_the_attempt_decides_over_all_of_them(scorer_service):
    """Two chunks, the first announced again by a run taken over (nothing new in it), then
    the attempt's close listing all four: each chunk is checked once with the job's counts, the
    selection spans every chunk, and the close carries only what no chunk carried."""
    job = uuid.uuid4()
    names = ("astronaut", "coffee", "chelsea", "camera")
    refs = [scorer_service.put(job, i, png(rgb_photo(name))) for i, name in enumerate(names)]
    scorer_service.publish(chunk(job, refs[:2], images=2), chunk(job, refs[:2], images=2),
                           chunk(job, refs[2:3], images=2, stored=3))
    scorer_service.publish(attempt(job, refs, images=2))

    *checked, scored = scorer_service.outcomes(job, want=4)
    assert [type(e) for e in checked] == [CandidatesChecked] * 3
    assert [[s.index for s in e.scores] for e in checked] == [[0, 1], [], [2]]
    assert [(e.generated, e.scored, e.candidates) for e in checked] == [(2, 2, 4), (2, 2, 4), (3, 3, 4)]
    assert checked[0].eta_s is not None and checked[0].passing == sum(s.passed for s in checked[0].scores)
    assert isinstance(scored, CandidatesScored) and len(scored.selected) == 2
    assert [s.index for s in scored.scores] == [3]  # the only one no chunk carried
    assert [s.index for s in scored.selected_scores] == scored.selected
