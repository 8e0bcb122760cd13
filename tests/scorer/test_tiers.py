"""Scoring in tiers: a candidate that fails a tier is not measured further, and the last
tier measures only until the job's best K are known, on real paintings and photographs.

The verdicts and the selection must be those of measuring everything; what is skipped
must say so and never count as a pass. A plugin dimension that counts what it measures
shows who paid for which check.
"""

import functools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from services.common.quality.dimensions import registered
from services.common.quality.fingerprints import near_duplicates
from services.common.quality.profiles import load_profile
from services.router.providers.local.painter import CandidateRange, LocalGenerator
from services.scorer.dimensions import (
    DIMENSIONS,
    TIER_ONE,
    TIER_TWO,
    Bounds,
    Dimension,
    Equipment,
    ImageVerdict,
    QualityRules,
    Scoring,
    faces,
    select_best,
)
from services.scorer.dimensions.engine import Leg
from services.scorer.dimensions.tiers import Enough, ImageProgress, PlannedDimension, TierWalk
from tests.scorer.conftest import blurred, png
from tests.scorer.test_faces import grace_hopper

SEEDS = range(8)
CANDIDATES = 8


@pytest.fixture(scope="module")
def jobs() -> list[list[bytes]]:
    """Eight jobs of eight paintings each; about a third blurred or blank (Tier 1 rejects them)."""
    generator = LocalGenerator(256, 256, defect_rate=0.34)
    return [[c.png for c in generator.paint(CandidateRange(prompt=f"a lighthouse, take {seed}", seed=seed, count=CANDIDATES))]
            for seed in SEEDS]


@pytest.fixture(scope="module")
def portraits(photos) -> list[bytes]:
    """Portraits that pass or fail headshot in every tier: the astronaut and Grace Hopper,
    crops and mild blurs of them (sharper or softer, so their Tier-1 scores differ), a cat
    and a coffee cup (no face: Tier 2 rejects them), and blurred and black copies (Tier 1)."""
    astronaut, grace = photos["astronaut"], grace_hopper()
    return [png(image) for image in (
        astronaut, blurred(astronaut, 0.8), np.ascontiguousarray(astronaut[20:, 10:490]), grace,
        blurred(grace, 1.0), photos["chelsea"], photos["coffee"], blurred(astronaut, 8), astronaut * 0,
    )]


class Counting:
    """A Tier-3 plugin measure that counts the images it is asked to measure."""

    def __init__(self) -> None:
        self.measured = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.measured += pixels.shape[0]
        return pixels.mean(dim=(1, 2, 3)).double()


@pytest.fixture
def counted():
    measure = Counting()
    dimension = Dimension(name="test_brightness", measure=measure, bounds=Bounds(minimum=0.0),
                          failure_hint="never fails", weight=0.0, lowest=0.0, highest=1.0)
    DIMENSIONS[dimension.name] = dimension
    yield measure
    DIMENSIONS.pop(dimension.name)


def test_each_dimension_declares_its_tier_by_cost():
    assert set(TIER_ONE) == {"sharpness", "noise", "blockiness", "exposure", "clipping", "blank", "banding", "size",
                             "aspect", "prompt_alignment", "frames", "frame_sharpness", "flicker", "container",
                             "duration", "frame_rate", "clip_aspect", "resolution", "frozen", "black_frames",
                             "temporal_flicker", "movement"}
    assert set(TIER_TWO) == {"faces", "face_size", "face_position", "eyes_open", "skin_tone", "lighting", "background",
                             "nsfw", "scene_cuts", "second_person"}
    assert DIMENSIONS["identity"].tier == 3, "the face embedding is the dearest check: marked expensive"
    assert DIMENSIONS["product_match"].tier == 3, "so is matching a product's features with its photos'"
    assert DIMENSIONS["face_consistency"].tier == 3, "so is comparing a clip's faces"
    plugin = Dimension(name="plugin", measure=lambda pixels: pixels, bounds=Bounds(maximum=1), failure_hint="")
    assert plugin.tier == 3, "a dimension that does not say is expensive"
    with pytest.raises(ValueError, match="tier"):
        Dimension(name="plugin", measure=lambda pixels: pixels, bounds=Bounds(maximum=1), failure_hint="", tier=4)
    with pytest.raises(ValueError, match="lowest"):
        Dimension(name="plugin", measure=lambda pixels: pixels, bounds=Bounds(maximum=1), failure_hint="",
                  lowest=1.0, highest=0.0)


def test_the_most_headroom_is_where_the_declared_values_end():
    assert Bounds(minimum=20).most_headroom(0.0, None, scale=None) == math.inf
    assert Bounds(minimum=20).most_headroom(0.0, 60.0, scale=None) == pytest.approx(2.0)
    assert Bounds(maximum=0.25).most_headroom(0.0, 1.0, scale=None) == pytest.approx(1.0)
    assert Bounds(maximum=0.25).most_headroom(None, 1.0, scale=None) == math.inf
    assert Bounds(minimum=0.02, maximum=0.6).most_headroom(0.0, None, scale=None) == pytest.approx(1.0)
    assert Bounds(minimum=0.02, maximum=0.6).most_headroom(0.5, None, scale=None) == pytest.approx(0.1 / 0.29)


def test_a_candidate_rejected_at_tier_one_is_not_measured_further_and_says_so(scorer, jobs):
    images = [image for job in jobs[:3] for image in job]
    everything = scorer.score(images, Scoring(profile=load_profile("generic")))
    tiered = scorer.score(images, Scoring(profile=load_profile("generic"), tiered=True))

    rejected = [(full, tier) for full, tier in zip(everything, tiered) if not full.passed]
    assert len(rejected) >= 6
    for full, tier in zip(everything, tiered):
        assert tier.passed == full.passed and tier.judged
        assert set(tier.failed) == set(full.failed) & set(TIER_ONE), (full.failed, tier.failed)
    for full, tier in rejected:
        nsfw = tier.dimensions["nsfw"]
        assert tier.not_measured == ("nsfw",)
        assert nsfw.value is None and not nsfw.passed and "nsfw" not in tier.failed
        assert nsfw.reason == f"nsfw unmeasured: rejected at tier 1 by {', '.join(tier.failed)}"
        for name in tier.failed:
            assert tier.dimensions[name] == full.dimensions[name]


def test_tier_two_is_judged_only_where_tier_one_passed(scorer, portraits, photos, counted):
    rules = QualityRules(thresholds={"test_brightness": {}})
    profile = load_profile("headshot", rules)
    everything = scorer.score(portraits, Scoring(profile=profile, reference=portraits[0]))
    counted.measured = 0
    tiered = scorer.score(portraits, Scoring(profile=profile, reference=portraits[0], tiered=True))

    assert [v.passed for v in tiered] == [v.passed for v in everything]
    black, cat = tiered[-1], tiered[5]
    assert "blank" in black.failed and "faces" in black.not_measured and "identity" in black.not_measured
    # Moderation decides pass or fail, never rank: judged last, it is not paid for a cat that
    # the face checks reject, nor are the portrait checks, measured after them. Counting
    # faces shares the face checks' work: it stays with them.
    assert "faces" in cat.failed and set(cat.not_measured) == {"skin_tone", "lighting", "background", "nsfw",
                                                                "identity", "test_brightness"}
    assert "rejected at tier 2 by faces" in cat.dimensions["test_brightness"].reason
    assert "rejected at tier 2 by faces" in cat.dimensions["nsfw"].reason
    passed_tiers_one_and_two = [v for v in everything if all(DIMENSIONS[name].tier == 3 for name in v.failed)]
    assert counted.measured == len(passed_tiers_one_and_two) < len(portraits), "Tier 3 measured only those"


@pytest.fixture(scope="module")
def measured_everything(scorer, jobs) -> Callable[[str], list[list[ImageVerdict]]]:
    """Every dimension of every candidate of each job, measured once per profile (each value
    of K compares with the same), with the scoring's own dimensions."""
    return functools.cache(lambda name: [scorer.score(job, Scoring(profile=load_profile(name))) for job in jobs])


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("name", ["generic", "product"])
def test_enough_not_all_delivers_the_best_k_of_measuring_everything(scorer, jobs, measured_everything, name, k):
    """On every job of the seed mix the K selected are those of measuring every dimension
    of every candidate; every judged candidate has the verdict it has then. (Generic's Tier 2
    is nsfw alone, which does not weigh in the ranking; product's background does.)"""
    profile = load_profile(name)
    skipped = 0
    for job, everything in zip(jobs, measured_everything(name), strict=True):
        tiered = scorer.score(job, Scoring(profile=profile, tiered=True, enough=Enough(images=k, indices=tuple(range(len(job))))))

        assert select_best(tiered, k) == select_best(everything, k)
        for full, tier in zip(everything, tiered):
            if tier.judged:
                assert tier.passed == full.passed
                assert tier.score == full.score or not tier.passed
            else:
                assert not tier.passed and not tier.failed and "nsfw" in tier.not_measured
                assert "measuring stopped once the job had" in tier.dimensions["nsfw"].reason
                skipped += 1
    assert skipped >= len(jobs), "each job skips some of its candidates' moderation"


def test_the_tiers_after_the_first_are_measured_best_first(scorer, jobs, counted):
    """A ranking Tier-2 dimension and a Tier-3 one, each counting what it measures: with
    Enough, a candidate whose ceiling cannot outrank the K-th passing one is not measured
    in Tier 2, and Tier 3 is measured only where Tier 2 passed; the selection is that of
    measuring everything."""
    middle = Counting()
    DIMENSIONS["test_middle"] = Dimension(name="test_middle", measure=middle, bounds=Bounds(maximum=1.0),
                                          failure_hint="never fails", weight=1.0, tier=2, lowest=0.0, highest=1.0)
    try:
        profile = load_profile("generic", QualityRules(thresholds={"test_middle": {}, "test_brightness": {}}))
        survivors = measured_middle = measured_last = 0
        for job in jobs:
            everything = scorer.score(job, Scoring(profile=profile))
            middle.measured = counted.measured = 0
            tiered = scorer.score(job, Scoring(profile=profile, tiered=True, enough=Enough(images=1, indices=tuple(range(len(job))))))
            assert select_best(tiered, 1) == select_best(everything, 1)
            survivors += sum(not set(full.failed) & set(TIER_ONE) for full in everything)
            measured_middle, measured_last = measured_middle + middle.measured, measured_last + counted.measured
            assert counted.measured <= middle.measured
        assert measured_middle < survivors, "some candidates were never measured past Tier 1"
        assert measured_last <= measured_middle
    finally:
        DIMENSIONS.pop("test_middle")


def test_enough_not_all_on_portraits_selects_as_measuring_everything(scorer, portraits):
    profile = load_profile("headshot")
    for k in (1, 2):
        everything = scorer.score(portraits, Scoring(profile=profile, reference=portraits[0]))
        tiered = scorer.score(portraits, Scoring(profile=profile, reference=portraits[0], tiered=True,
                                                 enough=Enough(images=k, indices=tuple(range(len(portraits))))))
        assert select_best(tiered, k) == select_best(everything, k)
        assert all(full.passed or not v.passed for v, full in zip(tiered, everything))
        assert all(v.passed == full.passed for v, full in zip(tiered, everything) if v.judged)


def test_a_job_whose_best_candidates_fail_measures_the_next_ones(photos, scorer):
    """Moderating FACE_FEMALE, the sharp portraits of women fail Tier 2: the job measures on
    until a candidate passes, and selects what measuring everything selects."""
    from services.scorer.dimensions import Scorer

    images = [png(photos["astronaut"]), png(grace_hopper()), png(blurred(photos["coffee"], 1.0))]
    moderating_faces = Equipment(device=scorer.device, load_entry_points=False, moderated_classes=frozenset({"FACE_FEMALE"}))
    with Scorer(moderating_faces) as strict:
        everything = strict.score(images, Scoring(profile=load_profile("generic")))
        tiered = strict.score(images, Scoring(profile=load_profile("generic"), tiered=True, enough=Enough(images=1, indices=(0, 1, 2))))
    assert [v.passed for v in everything] == [False, False, True]
    assert [v.passed for v in tiered] == [False, False, True]
    assert tiered[0].failed == tiered[1].failed == ("nsfw",)


def test_candidates_of_earlier_attempts_count_towards_enough(scorer, jobs):
    """A job that already has K passing candidates better than anything this attempt can
    reach measures none of this attempt's last tier: none of them could be selected."""
    job = jobs[0]
    tiered = scorer.score(job, Scoring(profile=load_profile("generic"), tiered=True,
                                       enough=Enough(images=2, indices=tuple(range(10, 10 + len(job))),
                                                     passed_before=((50.0, 0), (40.0, 1)))))
    assert not any(v.passed for v in tiered)
    assert all(v.not_measured == ("nsfw",) for v in tiered)


def test_an_order_of_different_pictures_measures_on_past_a_near_duplicate(scorer, jobs):
    """The best painting of a job twice among its candidates: a plain job of two stops once
    both copies pass; one that asks for different pictures counts the copy as no pass and
    measures on, so that its two best different pictures are known, as measuring everything
    finds them."""
    profile = load_profile("generic")
    job = next(job for job in jobs if sum(v.passed for v in scorer.score(job, Scoring(profile=profile))) >= 3)
    everything = scorer.score(job, Scoring(profile=profile))
    best = max((v for v in everything if v.passed), key=lambda v: v.score)
    twice = [job[everything.index(best)], *job]
    indices = tuple(range(len(twice)))

    plain = scorer.score(twice, Scoring(profile=profile, tiered=True, enough=Enough(images=2, indices=indices)))
    different = scorer.score(twice, Scoring(profile=profile, tiered=True, enough=Enough(images=2, indices=indices, distinct=True)))

    def passing_prints(verdicts) -> list[str]:
        return [v.fingerprint for v in verdicts if v.passed]

    alike = passing_prints(plain)
    assert len(alike) == 2 and near_duplicates(*alike), "the plain job stopped at the two copies"
    found = sorted((v for v in different if v.passed), key=lambda v: -v.score)
    distinct = [found[0]] + [v for v in found[1:] if not near_duplicates(v.fingerprint, found[0].fingerprint)]
    assert len(distinct) >= 2, "the order of different pictures measured on to a second, different one"
    second_best = max((v for v in everything if v.passed and not near_duplicates(v.fingerprint, best.fingerprint)),
                      key=lambda v: v.score)
    assert distinct[1].score == second_best.score


def test_ceilings_bound_the_scores_of_passing_candidates(scorer, jobs, portraits):
    for images, profile, reference in ((portraits, load_profile("headshot"), portraits[0]),
                                       (portraits, load_profile("headshot"), None),
                                       (jobs[2], load_profile("product"), None)):
        everything = scorer.score(images, Scoring(profile=profile, reference=reference))
        walk = scorer.walk_of(Scoring(profile=profile, reference=reference))
        first_steps = {d.name for step in walk.steps[:-1] for d in step.dimensions}
        for verdict in everything:
            if verdict.passed:
                so_far = ImageProgress(values={n: r.value for n, r in verdict.dimensions.items() if n in first_steps})
                assert verdict.score <= walk.ceiling(so_far)


def test_a_ceiling_is_the_best_score_the_last_tier_can_give():
    """Tier 1 measured, the ceiling is the score of Tier 2 at its best: the middle of
    face_size's range, no offset, no shadow, no clutter; any other Tier-2 value scores less."""
    profile = load_profile("headshot")
    plan = {name: PlannedDimension(registered(name)) for name in profile.dimension_names}
    plan |= {name: PlannedDimension(registered(name), waived_for="reference") for name in ("identity", "skin_tone")}
    plan["prompt_alignment"] = PlannedDimension(registered("prompt_alignment"), missing="clip_model")
    walk = TierWalk.of(profile, plan, tiered=True)
    assert [sorted(step.tiers) for step in walk.steps] == [[1], [2], [2], [3]], "nsfw, which does not rank, is judged last"
    assert [sorted(d.name for d in step.dimensions) for step in walk.steps[1:]] == [
        ["eyes_open", "face_position", "face_size", "faces"], ["background", "lighting"], ["nsfw"]], "face checks first"
    assert walk.ordered_from == 1
    tier_one = {"sharpness": 35.0, "noise": 4.0, "blockiness": 1.1, "exposure": 0.4, "clipping": 0.1, "blank": 0.2,
                "banding": 0.01, "size": 0.0, "aspect": 0.0}
    best = {"faces": 1.0, "face_size": 0.31, "face_position": 0.0, "eyes_open": 2.0, "lighting": 0.0,
            "background": 0.0, "nsfw": 0.0}

    ceiling = walk.ceiling(ImageProgress(values=dict(tier_one)))
    assert ceiling > walk.score(ImageProgress(values=dict(tier_one))), "a low Tier-1 score can rise with Tier 2"
    assert walk.score(ImageProgress(values=tier_one | best)) == pytest.approx(ceiling, rel=1e-8)
    assert walk.score(ImageProgress(values=tier_one | best)) <= ceiling
    for name, worse in (("face_size", 0.05), ("face_position", 0.3), ("lighting", 0.4), ("background", 0.2)):
        assert walk.score(ImageProgress(values=tier_one | best | {name: worse})) < ceiling


def test_a_weighted_dimension_without_limits_is_measured_wherever_it_could_rank(scorer, portraits):
    """eyes_open counts eyes: no most. Weighted, it makes a ceiling infinite until it is
    measured, so every candidate that passes Tier 1 is measured in Tier 2; the selection is
    that of measuring everything."""
    profile = load_profile("headshot", QualityRules(thresholds={"eyes_open": {"weight": 1.0}}))
    everything = scorer.score(portraits, Scoring(profile=profile))
    tiered = scorer.score(portraits, Scoring(profile=profile, tiered=True, enough=Enough(images=1, indices=tuple(range(len(portraits))))))
    assert select_best(tiered, 1) == select_best(everything, 1)
    survivors = [t for t, e in zip(tiered, everything) if not set(e.failed) & set(TIER_ONE)]
    assert len(survivors) >= 4
    assert all(t.dimensions["eyes_open"].value is not None for t in survivors)


def test_a_value_beyond_the_declared_range_is_an_error(scorer, jobs):
    dimension = Dimension(name="test_negative", measure=lambda pixels: -pixels.mean(dim=(1, 2, 3)),
                          bounds=Bounds(maximum=1.0), failure_hint="", lowest=0.0)
    DIMENSIONS[dimension.name] = dimension
    try:
        with pytest.raises(ValueError, match="outside its declared range"):
            scorer.score(jobs[0][:1], Scoring(profile=load_profile("generic", QualityRules(thresholds={"test_negative": {}}))))
    finally:
        DIMENSIONS.pop(dimension.name)


def test_the_batched_walk_judges_as_the_image_by_image_walk(scorer, jobs, portraits):
    """The path the scorer takes on a GPU (stills stacked by size, survivors of a tier
    selected out of the batch), run here on the CPU: the same values and verdicts."""
    profile = load_profile("headshot")
    images = [*jobs[3], *portraits]
    context = _context(scorer, portraits[0])
    walk = TierWalk.of(profile, scorer._plan(profile, context), tiered=True)
    one_by_one = scorer._walk_each(images, Leg(walk=walk, context=context, color=True, steps=len(walk.steps) - 1))
    batched = scorer._walk_batched(images, Leg(walk=walk, context=_context(scorer, portraits[0]), color=True, steps=len(walk.steps) - 1))
    for (alone, kept_alone), (together, kept_together) in zip(one_by_one, batched, strict=True):
        assert together.values == pytest.approx(alone.values, rel=1e-5, nan_ok=True)
        assert (together.steps_done, together.stopped) == (alone.steps_done, alone.stopped)
        assert (kept_alone is None) == (kept_together is None)


def _context(scorer, reference):
    from services.scorer.dimensions.batch import ScoringContext

    return ScoringContext(device=scorer.device, prompt=None, reference=reference, requested_size=None, clip=scorer.clip, moderated_classes=scorer.moderated_classes)


def test_a_job_or_its_template_can_ask_for_every_dimension(monkeypatch):
    from services.common.quality import profiles
    from services.common.quality.profiles import ProfileError, job_profile
    from services.common.templates import Catalogue, Template

    assert not job_profile("generic").score_all
    assert job_profile("generic", rules={"score_all": True}).score_all
    assert job_profile("headshot", rules={"thresholds": {"sharpness": {"min": 40}}, "score_all": True}).score_all
    with pytest.raises(ProfileError, match="score_all"):
        job_profile("generic", rules={"score_all": "yes"})

    catalogue = Catalogue(version="test", templates={"calibration": Template(profile="generic", score_all=True)})
    monkeypatch.setattr(profiles, "load_catalogue", lambda: catalogue)
    assert job_profile("calibration").score_all


def test_faces_are_found_once_per_image_whichever_tier_reads_them(scorer, portraits, monkeypatch):
    """identity (Tier 3) reads the faces that Tier 2 found, image by image and in batches."""
    from services.common import face_models

    found = []
    detect = face_models.detect_faces
    monkeypatch.setattr(face_models, "detect_faces", lambda luma, smallest: found.append(luma.shape) or
                        detect(luma, smallest))
    profile = load_profile("headshot")
    context = _context(scorer, portraits[0])
    walk = TierWalk.of(profile, scorer._plan(profile, context), tiered=True)
    assert [sorted(step.tiers) for step in walk.steps] == [[1], [2], [2], [3], [3]]
    for way in (scorer._walk_each, scorer._walk_batched):
        found.clear()
        faces.reference_portrait.cache_clear()
        faces.reference_embedding.cache_clear()
        walked = way(portraits, Leg(walk=walk, context=_context(scorer, portraits[0]), color=True, steps=len(walk.steps)))
        reached_tier_two = sum(progress.steps_done >= 2 for progress, _ in walked)
        assert len(found) == reached_tier_two + 1, way.__name__  # and the reference photo's, once
        assert any(progress.values.get("identity") is not None for progress, _ in walked)
    # The next call with the same reference photo finds the faces of its images alone.
    found.clear()
    walked = scorer._walk_each(portraits, Leg(walk=walk, context=_context(scorer, bytes(bytearray(portraits[0]))), color=True,
                                              steps=len(walk.steps)))
    assert len(found) == sum(progress.steps_done >= 2 for progress, _ in walked)


def test_batches_split_and_joined_between_tiers_keep_the_faces_found(scorer, portraits, monkeypatch):
    """On a GPU the survivors of a tier are selected out of their batch and joined again for
    the last tier; the faces found image by image go along, in the images' order, and are
    not looked for again."""
    from services.common import face_models
    from services.scorer.dimensions.batch import decode_planes, joined, stack_batch
    from services.scorer.dimensions.faces import findings

    context = _context(scorer, portraits[0])
    stills = [(i, decode_planes(i, portraits[i], color=True)) for i in (0, 1, 7)]  # three of 512×512
    batch = stack_batch(stills, context)
    found = findings(batch)
    assert found[0].faces, "the astronaut's face"
    first, last = batch.select([0]).kept(), batch.select([1, 7]).kept()
    monkeypatch.setattr(face_models, "detect_faces", lambda *_: pytest.fail("faces looked for again"))
    together = joined([last, first])
    assert [b.indices for b in together] == [(1, 7, 0)]
    assert findings(together[0]) == [found[1], found[2], found[0]]
    assert torch.equal(together[0].planes[2], batch.planes[0])
