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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.scorer_images import SIDE, bench_images, portraits  # noqa: E402
from bench.scorer_tiers import TIER_PROFILES, tier_report  # noqa: E402
from genline_stack.stopping import run_stoppable  # noqa: E402
from services.common.quality.profiles import Profile, load_profile, profile_of_dimensions  # noqa: E402
from services.scorer.dimensions import Equipment, Scorer, Scoring  # noqa: E402
from services.scorer.dimensions.tier1 import BLOCK_STEP_CAP, BLOWN_LEVEL, CRUSHED_LEVEL  # noqa: E402

TIER_ONE = ("sharpness", "noise", "blockiness", "exposure", "clipping", "blank", "size", "aspect")
NEWER_DIMENSIONS = ("banding", "nsfw", "faces", "identity", "skin_tone", "lighting", "background")
PORTRAIT_DIMENSIONS = {"faces", "identity", "skin_tone", "lighting", "background"}
IMMERKAER_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)


def tier_one_profile() -> Profile:
    generic = load_profile("generic")
    checks = tuple(check for check in generic.checks if check.dimension in TIER_ONE)
    return Profile(name="tier1", description="generic's Tier-1 dimensions", checks=checks)


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
        verdicts += scorer.score(chunk, Scoring(profile=profile, requested_size=requested))
    if scorer.device.type == "cuda":
        torch.cuda.synchronize()
    return [{name: result.passed for name, result in v.dimensions.items()} for v in verdicts]


def dimension_rates(scorer: Scorer, images: list[bytes], count: int, batch: int) -> dict[str, float]:
    """Images per second through each newer dimension alone, the best of two rounds."""
    faces = portraits()
    rates = {}
    for name in NEWER_DIMENSIONS:
        pool = faces if name in PORTRAIT_DIMENSIONS else images
        chosen = [pool[i % len(pool)] for i in range(count)]
        profile = profile_of_dimensions((name,))

        def run(chosen=chosen, profile=profile):
            return [scorer.score(chosen[s : s + batch], Scoring(profile=profile, reference=faces[0]))
                    for s in range(0, count, batch)]

        run()  # loads the model
        rates[name] = count / min(timed(run)[0] for _ in range(2))
    return rates


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
        with Scorer(Equipment(device=torch.device(args.device), load_entry_points=False)) as scorer:
            if args.dimension_images:
                print_dimension_rates(scorer, dimension_rates(scorer, bench_images(48), args.dimension_images,
                                                              args.batch), args.device)
            if args.tier_jobs:
                tier_report(scorer, args.tier_jobs, args.rounds, args.tier_profiles)
        return

    images = bench_images(args.images)
    profile = tier_one_profile()
    requested = (SIDE, SIDE)
    scorer = Scorer(Equipment(device=torch.device(args.device), load_entry_points=False))
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
        with Scorer(Equipment(device=torch.device(args.device), load_entry_points=False)) as tiers_scorer:
            tier_report(tiers_scorer, args.tier_jobs, args.rounds, args.tier_profiles)


def print_dimension_rates(scorer: Scorer, rates: dict[str, float], device: str) -> None:
    for name, rate in rates.items():
        print(f"dimension {name:<12} alone: {rate:8.1f} images/s ({device}, {SIDE}x{SIDE}, "
              f"{'portraits' if name in PORTRAIT_DIMENSIONS else 'bench images'})")


if __name__ == "__main__":
    run_stoppable(main)
