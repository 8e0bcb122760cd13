"""Scorer throughput: 1-megapixel JPEGs per second through the Tier-1 dimensions.

N: `Scorer.score`, called with --batch images at a time as the service calls it, decode
included. No Tier-1 dimension reads colour, so each JPEG's luma plane alone is decoded.
On the CPU the Scorer's threads each decode and measure one image (the batched dimension
code on a batch of one, which stays in cache); on CUDA, threads decode and the device
measures batches of up to 128 images copied once each from pinned memory.
M: a straightforward per-image loop in the same run: cv2.imdecode to colour, cv2.cvtColor
to grey, then each metric with NumPy/OpenCV in float64, one image at a time.
Both judge the same images against the generic profile's Tier-1 bounds (prompt_alignment
and Tier 2 left out), and their pass/fail verdicts must agree, dimension by dimension.

The images are 1024×1024 JPEGs (quality 90) made from scikit-image photographs (resized)
and LocalGenerator paintings, plus degraded copies (blur, noise, quality-5 JPEG, blown
out, black), so that both passes and failures are compared.

Then the cost of each newer dimension alone, in images/s through `Scorer.score` (decode
included, colour where the dimension reads it), on the same images: banding and nsfw
(batched), and the face dimensions on portraits (the astronaut, Grace Hopper and the
astronaut edited), with the astronaut as the reference photo. Face dimensions each detect
faces anew, so each figure is what adding that one dimension to a profile costs.

Then scoring in tiers against measuring every dimension, per profile (generic, headshot,
product, motion), on the same jobs in the same run: each job is 12 candidates for 3 images
(N = 4K), 4 of them with planted defects that Tier 1 rejects (blurred, noisy, blown out,
black, blocky; for clips also a still and a blurred clip) and 8 sound ones, shuffled.
Stills are 1024x1024 JPEGs: photographs and LocalGenerator paintings for generic and
product, portraits (the astronaut, Grace Hopper, crops, mild blurs, edits, a cat and a
coffee cup) for headshot, with the astronaut as the reference photo; clips are the
router's own pan-and-zoom animations (8 frames of 384x384). Each job is scored both ways,
alternately, `Scorer.score` as the service calls it: all dimensions (score_all), and tiered
with the job's K. The figures are candidates per second of process CPU time (every
thread's, not wall time, so that other work on the machine does not count), the share of
dimension evaluations (a dimension measured on a candidate) the tiers skipped, and
whether both selected the same K in every job; a differing selection stops the bench.
Two limits are measured beside them: the oracle (Tier 1 for every candidate, the rest for
the K selected only: what knowing the K beforehand would cost) and the bound (the oracle,
and on the others the steps every exact walk must measure, even one told the K-th selected's
score: a candidate whose ceiling outranks it can only be told apart by measuring it).

    python bench/scorer.py [--images 256] [--batch 32] [--device cpu|cuda] [--rounds 2]
                           [--dimension-images 48] [--tier-jobs 3]

`--images 0` and `--dimension-images 0` leave out the first two parts; `--tier-jobs 0` the last.
"""

import argparse
import math
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import data as photos  # noqa: E402

from services.common.quality.dimensions import registered  # noqa: E402
from services.common.quality.profiles import Profile, load_profile, profile_of_dimensions  # noqa: E402
from services.router.providers.image_stages import animate  # noqa: E402
from services.router.providers.painter import LocalGenerator  # noqa: E402
from services.scorer.dimensions import ImageVerdict, Scorer, select_best  # noqa: E402
from services.scorer.dimensions.tier1 import BLOCK_STEP_CAP, BLOWN_LEVEL, CRUSHED_LEVEL  # noqa: E402
from services.scorer.dimensions.tiers import Enough, Progress, TierWalk, outranks  # noqa: E402

SIDE = 1024
PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket")
TIER_ONE = ("sharpness", "noise", "blockiness", "exposure", "clipping", "blank", "size", "aspect")
NEWER_DIMENSIONS = ("banding", "nsfw", "faces", "identity", "skin_tone", "lighting", "background")
PORTRAIT_DIMENSIONS = {"faces", "identity", "skin_tone", "lighting", "background"}
IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def tier_one_profile() -> Profile:
    generic = load_profile("generic")
    checks = tuple(check for check in generic.checks if check.dimension in TIER_ONE)
    return Profile("tier1", "generic's Tier-1 dimensions", checks)


def source_images() -> list[np.ndarray]:
    """RGB 1024×1024 sources: photos, paintings, and degraded copies of the photos."""
    sources = []
    for name in PHOTOS:
        image = getattr(photos, name)()
        rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        sources.append(cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4))
    generator = LocalGenerator(SIDE, SIDE, defect_rate=0.25)
    for candidate in generator.paint("bench", seed=7, count=8):
        sources.append(cv2.imdecode(np.frombuffer(candidate.png, np.uint8), cv2.IMREAD_COLOR_RGB))
    rng = np.random.default_rng(0)
    photo = sources[0]
    sources.append(cv2.GaussianBlur(photo, (0, 0), 4))
    sources.append(np.clip(photo + rng.normal(0, 30, photo.shape), 0, 255).astype(np.uint8))
    sources.append(np.clip(photo.astype(np.int32) * 2 + 160, 0, 255).astype(np.uint8))
    sources.append(np.zeros_like(photo))
    return sources


def encode(rgb: np.ndarray, quality: int = 90) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def bench_images(count: int) -> list[bytes]:
    sources = source_images()
    encoded = [encode(rgb) for rgb in sources] + [encode(sources[1], quality=5)]
    return [encoded[i % len(encoded)] for i in range(count)]


def baseline_metrics(data: bytes, requested: tuple[int, int]) -> dict[str, float]:
    """Every Tier-1 metric of one image, the plain way."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    luma = grey.astype(np.float64)
    height, width = grey.shape
    laplacian = cv2.Laplacian(luma, cv2.CV_64F, ksize=1)[1:-1, 1:-1]
    noise_response = cv2.filter2D(luma, cv2.CV_64F, IMMERKAER_KERNEL)[1:-1, 1:-1]
    return {
        "sharpness": float(laplacian.var()),
        "noise": math.sqrt(math.pi / 2) / 6 * float(np.abs(noise_response).mean()),
        "blockiness": baseline_blockiness(luma),
        "exposure": float(luma.mean()) / 255,
        "clipping": float(((grey <= CRUSHED_LEVEL) | (grey >= BLOWN_LEVEL)).mean()),
        "blank": float(luma.std()) / 255,
        "size": max(abs(width - requested[0]) / requested[0], abs(height - requested[1]) / requested[1]),
        "aspect": abs(math.log((width / height) / (requested[0] / requested[1]))),
    }


def baseline_blockiness(luma: np.ndarray) -> float:
    across = np.minimum(np.abs(np.diff(luma, axis=1)), BLOCK_STEP_CAP)
    down = np.minimum(np.abs(np.diff(luma, axis=0)), BLOCK_STEP_CAP)
    seams = np.concatenate([across[:, 7::8].ravel(), down[7::8].ravel()]).mean()
    middles = np.concatenate([across[:, 3::8].ravel(), down[3::8].ravel()]).mean()
    return float((seams + 1) / (middles + 1))


def baseline_verdicts(images: list[bytes], profile: Profile, requested) -> list[dict[str, bool]]:
    verdicts = []
    for data in images:
        values = baseline_metrics(data, requested)
        verdicts.append({c.dimension: c.bounds.admits(values[c.dimension]) for c in profile.checks})
    return verdicts


def scorer_verdicts(scorer: Scorer, images: list[bytes], profile: Profile, batch: int, requested):
    verdicts = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        verdicts += scorer.score(chunk, profile, requested_size=requested)
    if scorer.device.type == "cuda":
        torch.cuda.synchronize()
    return [{name: result.passed for name, result in v.dimensions.items()} for v in verdicts]


def portraits() -> list[bytes]:
    from matplotlib import cbook

    astronaut = photos.astronaut()
    grace = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), cv2.IMREAD_COLOR_RGB)
    edited = np.clip(astronaut.astype(np.float64) * 1.1 + 10, 0, 255).astype(np.uint8)
    return [encode(cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)) for rgb in (astronaut, grace, edited)]


def dimension_rates(scorer: Scorer, images: list[bytes], count: int, batch: int) -> dict[str, float]:
    """Images per second through each newer dimension alone, the best of two rounds."""
    faces = portraits()
    rates = {}
    for name in NEWER_DIMENSIONS:
        pool = faces if name in PORTRAIT_DIMENSIONS else images
        chosen = [pool[i % len(pool)] for i in range(count)]
        profile = profile_of_dimensions((name,))

        def run(chosen=chosen, profile=profile):
            return [scorer.score(chosen[s : s + batch], profile, reference=faces[0]) for s in range(0, count, batch)]

        run()  # loads the model
        rates[name] = count / min(timed(run)[0] for _ in range(2))
    return rates


TIER_PROFILES = ("generic", "headshot", "product", "motion")
JOB_SOUND, JOB_DEFECTIVE, JOB_IMAGES = 8, 4, 3
CLIP_SIDE = 384


def degraded(rgb: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Copies that fail Tier 1: blurred, noisy, blown out, black."""
    return [cv2.GaussianBlur(rgb, (0, 0), 6), np.clip(rgb + rng.normal(0, 40, rgb.shape), 0, 255).astype(np.uint8),
            np.clip(rgb.astype(np.int32) * 2 + 160, 0, 255).astype(np.uint8), np.zeros_like(rgb)]


def still_pools(rng: np.random.Generator) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """(sound, defective) JPEGs per kind of still: 'scenes' and 'portraits'."""
    scenes = source_images()[: len(PHOTOS) + 8]  # the photographs and the paintings, no copies
    defects = [encode(copy) for rgb in scenes[:3] for copy in degraded(rgb, rng)] + [encode(scenes[1], quality=5)]
    from matplotlib import cbook

    astronaut = cv2.resize(photos.astronaut(), (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    grace = cv2.resize(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), cv2.IMREAD_COLOR_RGB),
                       (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    crop = cv2.resize(astronaut[40:900, 60:920], (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    people = [astronaut, grace, crop, cv2.GaussianBlur(astronaut, (0, 0), 1.2), cv2.GaussianBlur(grace, (0, 0), 1.0),
              np.clip(astronaut.astype(np.float64) * 1.1 + 10, 0, 255).astype(np.uint8),
              cv2.resize(photos.chelsea(), (SIDE, SIDE)), cv2.resize(photos.coffee(), (SIDE, SIDE))]
    portraits = [encode(rgb) for rgb in people]
    portrait_defects = [encode(copy) for rgb in (astronaut, grace) for copy in degraded(rgb, rng)]
    return {"scenes": ([encode(rgb) for rgb in scenes], defects), "portraits": (portraits, portrait_defects)}


def clip_pool(rng: np.random.Generator) -> tuple[list[bytes], list[bytes]]:
    """(sound, defective) clips: pan-and-zoom animations of stills, and of degraded stills."""
    params = {"frames": 8, "width": CLIP_SIDE, "height": CLIP_SIDE, "zoom": 1.2}
    scenes = source_images()[: len(PHOTOS) + 8]
    sound = [animate(encode(rgb), params, seed).data for seed, rgb in enumerate(scenes)]
    broken = [copy for rgb in scenes[:2] for copy in degraded(rgb, rng)]
    defective = [animate(encode(rgb), params, seed).data for seed, rgb in enumerate(broken)]
    return sound, defective + [encode(cv2.resize(scenes[0], (CLIP_SIDE, CLIP_SIDE)))]  # a still is no clip


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
        progress, dimensions = Progress(), set()
        for position, step in enumerate(walk.steps):
            ordered = position >= walk.ordered_from
            if ordered and not outranks((walk.ceiling(progress), index), kth):
                break
            progress.values |= {d.name: values[d.name] for d in step.dimensions if d.name in values}
            dimensions |= {d.name for d in step.dimensions} if ordered else set()
            if not walk.judge_step(progress, position):
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
    whole = lambda job: scorer.score(job, profile, reference=reference)  # noqa: E731
    tiered = lambda job: scorer.score(job, profile, reference=reference, tiered=True,  # noqa: E731
                                      enough=Enough(JOB_IMAGES, tuple(range(len(job)))))
    walk = scorer.walk_of(profile, reference=reference)
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
            return (scorer.score([job[i] for i in wanted], profile, reference=reference),
                    scorer.score(others, tier_one_of(profile), reference=reference))

        def bound(job=job, wanted=wanted, groups=groups):
            return (scorer.score([job[i] for i in wanted], profile, reference=reference),
                    [scorer.score(images, tier_one_of(profile, dimensions), reference=reference)
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


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each path; the best counts")
    parser.add_argument("--dimension-images", type=int, default=48, help="images per newer dimension; 0: skip")
    parser.add_argument("--tier-jobs", type=int, default=3, help="jobs per profile, tiered against all; 0: skip")
    parser.add_argument("--tier-profiles", nargs="+", choices=TIER_PROFILES, default=TIER_PROFILES)
    args = parser.parse_args()
    if not args.images:
        with Scorer(torch.device(args.device), load_entry_points=False) as scorer:
            if args.dimension_images:
                print_dimension_rates(scorer, dimension_rates(scorer, bench_images(48), args.dimension_images,
                                                              args.batch), args.device)
            if args.tier_jobs:
                tier_report(scorer, args.tier_jobs, args.rounds, args.tier_profiles)
        return

    images = bench_images(args.images)
    profile = tier_one_profile()
    requested = (SIDE, SIDE)
    scorer = Scorer(torch.device(args.device), load_entry_points=False)
    scorer_verdicts(scorer, images[: args.batch], profile, args.batch, requested)  # warm-up

    scorer_times, baseline_times = [], []
    for _ in range(args.rounds):
        seconds, ours = timed(lambda: scorer_verdicts(scorer, images, profile, args.batch, requested))
        scorer_times.append(seconds)
        seconds, theirs = timed(lambda: baseline_verdicts(images, profile, requested))
        baseline_times.append(seconds)
    rates = dimension_rates(scorer, images, args.dimension_images, args.batch) if args.dimension_images else {}
    scorer.close()

    disagreements = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    passing = sum(all(v.values()) for v in ours)
    n_rate = args.images / min(scorer_times)
    m_rate = args.images / min(baseline_times)
    print(f"{args.images} JPEG images of {SIDE}x{SIDE} ({sum(map(len, images)) / len(images) / 1e3:.0f} kB mean), "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}, scorer threads {scorer.threads}")
    print(f"{'path':<34}{'best s':>9}{'all rounds s':>24}{'images/s':>10}")
    path = "per-image tasks" if args.device == "cpu" else "batches"
    print(f"{'Scorer (' + args.device + ', ' + path + ')':<34}{min(scorer_times):>9.2f}"
          f"{' '.join(f'{t:.2f}' for t in scorer_times):>24}{n_rate:>10.1f}")
    print(f"{'per-image NumPy/OpenCV loop':<34}{min(baseline_times):>9.2f}"
          f"{' '.join(f'{t:.2f}' for t in baseline_times):>24}{m_rate:>10.1f}")
    print(f"verdicts: {passing}/{args.images} pass; {len(disagreements)} images judged differently")
    if disagreements:
        first = disagreements[0]
        raise SystemExit(f"verdicts differ on images {disagreements[:10]}; image {first}: {ours[first]} vs {theirs[first]}")
    print_dimension_rates(scorer, rates, args.device)
    print(f"images/s: {n_rate:.1f} baseline: {m_rate:.1f} ratio: {n_rate / m_rate:.2f} device: {args.device}")
    if args.tier_jobs:
        with Scorer(torch.device(args.device), load_entry_points=False) as tiers_scorer:
            tier_report(tiers_scorer, args.tier_jobs, args.rounds, args.tier_profiles)


def print_dimension_rates(scorer: Scorer, rates: dict[str, float], device: str) -> None:
    for name, rate in rates.items():
        print(f"dimension {name:<12} alone: {rate:8.1f} images/s ({device}, {SIDE}x{SIDE}, "
              f"{'portraits' if name in PORTRAIT_DIMENSIONS else 'bench images'})")


if __name__ == "__main__":
    main()
