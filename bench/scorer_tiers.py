"""Scoring in tiers against measuring every dimension, per profile, on the same jobs in the
same run, with the oracle and the bound beside them (bench/scorer.py says what each is)."""

import math
import time
from dataclasses import replace
from functools import partial

import numpy as np

from bench.scorer_images import clip_pool, still_pools
from services.common.quality.dimensions import registered
from services.common.quality.profiles import Profile, load_profile
from services.scorer.dimensions import ImageVerdict, Scorer, Scoring, select_best
from services.scorer.dimensions.tiers import Enough, ImageProgress, TierWalk, outranks

TIER_PROFILES = ("generic", "headshot", "product", "motion")
JOB_SOUND, JOB_DEFECTIVE, JOB_IMAGES = 8, 4, 3


def tier_jobs(sound: list[bytes], defective: list[bytes], jobs: int, rng: np.random.Generator) -> list[list[bytes]]:
    """Jobs of 8 sound and 4 defective candidates, drawn without repeats within a job, shuffled."""
    made = []
    for _ in range(jobs):
        chosen = [sound[i] for i in rng.choice(len(sound), JOB_SOUND, replace=len(sound) < JOB_SOUND)]
        chosen += [defective[i] for i in rng.choice(len(defective), JOB_DEFECTIVE, replace=False)]
        made.append([chosen[i] for i in rng.permutation(len(chosen))])
    return made


def evaluations(verdicts: list[ImageVerdict]) -> int:
    """Dimensions measured, over all candidates (unavailable, waived and skipped ones are not)."""
    return sum(result.value is not None for v in verdicts for result in v.dimensions.values())


def cpu_timed(run) -> tuple[float, object]:
    start = time.process_time()
    result = run()
    return time.process_time() - start, result


def tier_one_of(profile: Profile, beside: frozenset[str] = frozenset()) -> Profile:
    """The profile's Tier-1 checks and conditions, and those on the dimensions `beside`."""
    def kept(dimension: str) -> bool:
        return registered(dimension).tier == 1 or dimension in beside

    return replace(profile, checks=tuple(c for c in profile.checks if kept(c.dimension)),
                   forbidden=tuple(f for f in profile.forbidden if kept(f.dimension)))


def must_measure(walk: TierWalk, verdicts: list[ImageVerdict], wanted: list[int]) -> dict[int, frozenset[str]]:
    """Per candidate not selected, the dimensions past Tier 1 that every walk selecting the same
    K must measure, even one told the K-th selected's score beforehand: a candidate is left only
    once it fails a step, or once its ceiling (what it has measured, the rest at their best)
    cannot outrank the K-th; until then nothing but its next step tells it apart. Its values
    are those measuring every dimension found."""
    kth = sorted(((verdicts[i].score, i) for i in wanted), key=lambda r: (-r[0], r[1]))[-1]
    names = {j.label: j.dimension.name for j in walk.judgements}
    needed = {}
    for index, verdict in enumerate(verdicts):
        if index in wanted:
            continue
        values = {names[label]: result.value for label, result in verdict.dimensions.items()
                  if label in names and result.value is not None}
        progress, dimensions = ImageProgress(), set()
        for position, step in enumerate(walk.steps):
            ordered = position >= walk.ordered_from
            if ordered and not outranks((walk.ceiling(progress), index), kth):
                break
            measured = {d.name: values[d.name] for d in step.dimensions if d.name in values}
            dimensions |= {d.name for d in step.dimensions} if ordered else set()
            if not walk.judge_step(progress, measured, position=position):
                break
        if dimensions:
            needed[index] = frozenset(dimensions)
    return needed


def tier_comparison(scorer: Scorer, name: str, jobs: list[list[bytes]], reference: bytes | None,
                    rounds: int) -> dict[str, float]:
    """Both ways on every job, alternately; per way the least CPU time of the rounds, summed
    over jobs. `oracle`: Tier 1 for every candidate and the rest for the K selected only,
    the least any way that selects the same K could measure if it knew which K beforehand.
    `bound`: the oracle, and for the others what every exact walk must measure to tell them
    apart (`must_measure`): the least a walk that measures to find the K can cost."""
    profile = load_profile(name)
    whole = lambda job: scorer.score(job, Scoring(profile=profile, reference=reference))  # noqa: E731
    tiered = lambda job: scorer.score(job, Scoring(profile=profile, reference=reference, tiered=True,  # noqa: E731
                                                   enough=Enough(images=JOB_IMAGES, indices=tuple(range(len(job))))))
    walk = scorer.walk_of(Scoring(profile=profile, reference=reference))
    whole(jobs[0][:2]), tiered(jobs[0][:2])  # loads the models
    cpu = {"all": 0.0, "tiered": 0.0, "oracle": 0.0, "bound": 0.0}
    measured = {"all": 0, "tiered": 0}
    forced = 0
    for job in jobs:
        verdicts = whole(job)
        wanted = select_best(verdicts, JOB_IMAGES)
        needed = must_measure(walk, verdicts, wanted)
        forced += len(needed)
        others = [image for i, image in enumerate(job) if i not in wanted]
        groups: dict[frozenset[str], list[bytes]] = {}
        for i, image in enumerate(job):
            if i not in wanted:
                groups.setdefault(needed.get(i, frozenset()), []).append(image)

        def oracle(job=job, wanted=wanted, others=others):
            return (scorer.score([job[i] for i in wanted], Scoring(profile=profile, reference=reference)),
                    scorer.score(others, Scoring(profile=tier_one_of(profile), reference=reference)))

        def bound(job=job, wanted=wanted, groups=groups):
            return (scorer.score([job[i] for i in wanted], Scoring(profile=profile, reference=reference)),
                    [scorer.score(images, Scoring(profile=tier_one_of(profile, dimensions), reference=reference))
                     for dimensions, images in groups.items()])

        best = dict.fromkeys(cpu, math.inf)
        for round_ in range(rounds):
            for way, run in (("all", partial(whole, job)), ("tiered", partial(tiered, job)), ("oracle", oracle),
                             ("bound", bound)):
                seconds, verdicts = cpu_timed(run)
                best[way] = min(best[way], seconds)
                if way in measured and round_ == 0:
                    measured[way] += evaluations(verdicts)
                if way == "tiered" and select_best(verdicts, JOB_IMAGES) != wanted:
                    raise SystemExit(f"{name}: tiers selected {select_best(verdicts, JOB_IMAGES)}, all {wanted}")
        for way in cpu:
            cpu[way] += best[way]
    candidates = sum(len(job) for job in jobs)
    return {"candidates": candidates, **{way: candidates / seconds for way, seconds in cpu.items()},
            "skipped": 1 - measured["tiered"] / measured["all"], "forced": forced}


def tier_report(scorer: Scorer, jobs_per_profile: int, rounds: int, profiles=TIER_PROFILES) -> None:
    rng = np.random.default_rng(27)
    pools = still_pools(rng)
    reference = pools["portraits"][0][0]
    sources = {"generic": pools["scenes"], "product": pools["scenes"], "headshot": pools["portraits"],
               "motion": clip_pool(rng)}
    print(f"\ntiers: jobs of {JOB_SOUND + JOB_DEFECTIVE} candidates ({JOB_DEFECTIVE} with Tier-1 defects) for"
          f" {JOB_IMAGES} images; candidates per second of process CPU time, least of {rounds} rounds;"
          f" scorer threads {scorer.threads}")
    print("  oracle: Tier 1 for all, the rest for the K selected only; bound: the oracle, and the steps past"
          " Tier 1 that every exact walk must measure on the others (`forced`: candidates with any)")
    print(f"{'profile':<10}{'jobs':>5}{'candidates':>11}{'all dims/CPU-s':>16}{'tiered/CPU-s':>14}{'ratio':>8}"
          f"{'oracle ratio':>14}{'bound ratio':>13}{'forced':>8}{'of oracle':>11}{'of bound':>10}"
          f"{'evaluations skipped':>21}{'same K selected':>17}")
    for name in TIER_PROFILES:
        jobs = tier_jobs(*sources[name], jobs_per_profile, rng)
        if name not in profiles:
            continue
        row = tier_comparison(scorer, name, jobs, reference if name == "headshot" else None, rounds)
        print(f"{name:<10}{len(jobs):>5}{row['candidates']:>11}{row['all']:>16.1f}{row['tiered']:>14.1f}"
              f"{row['tiered'] / row['all']:>7.2f}x{row['oracle'] / row['all']:>13.2f}x{row['bound'] / row['all']:>12.2f}x"
              f"{row['forced']:>8}{row['tiered'] / row['oracle']:>11.2f}{row['tiered'] / row['bound']:>10.2f}"
              f"{row['skipped']:>20.0%}"
              f"{len(jobs):>13}/{len(jobs)}")
