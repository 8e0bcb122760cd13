"""Video scoring: clips per CPU-second in tiers with early exit, against decoding and
measuring every frame, with the same verdicts.

The clips are MP4s (H.264, 854x480, 24 fps, 2 s: what a 16:9 480p job of 2 s asks) made
here from photographs with `video.encode`: a camera drifting over scikit-image's
photographs and matplotlib's Grace Hopper (clean), and clips with one planted defect each:
frozen for its second half, three black frames, brightness pulsing from frame to frame, a
still encoded as a clip, a face that turns into another person's, one second long, a 4:3
clip, and a file that is not a clip at all.

Both passes score every clip against the `video` profile as the service does
(`Scorer.score` with the job's video block):
* tiered: the container first (nothing decoded), one pass over every frame shrunk to 160
  pixels for the temporal dimensions, then 8 sampled frames at 640 pixels a side for the
  frame, face and moderation dimensions, each step only for the clips that passed the one
  before (`tiered=True`);
* every frame: every dimension of every clip (`score_all`), the frame dimensions on every
  frame as decoded (`VideoSampling(frames=None, side=None)`).
The figures are clips per second of process CPU time (every thread's, not wall time, so
that other work on the machine does not count); both passes must give each clip the same
verdict (passed or not, and the tiered pass's failures among the full pass's).

    python bench/video.py [--rounds 1] [--seconds 2]

The last line reads `video: ratio=<tiered vs every frame> same_verdicts=<n>/<n>`.
"""

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib import cbook  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as photos  # noqa: E402

from genline_stack.stopping import run_stoppable  # noqa: E402
from services.common import video  # noqa: E402
from services.common.contracts import VideoSpec  # noqa: E402
from services.common.quality.profiles import load_profile  # noqa: E402
from services.scorer.dimensions import Equipment, ImageVerdict, Scorer, Scoring  # noqa: E402
from services.scorer.dimensions.batch import ClipRequest, VideoSampling  # noqa: E402

FPS = 24
ASKED = VideoSpec(duration_s=2, aspect_ratio="16:9", resolution="480p", fps=FPS)
CLEAN = ("astronaut", "coffee", "chelsea", "rocket", "grace")
PORTRAITS = ("astronaut", "grace")


def photograph(name: str) -> np.ndarray:
    if name == "grace":
        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
            return np.asarray(image.convert("RGB"))
    image = getattr(photos, name)()
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


def drift(pixels: np.ndarray, frames: int, size: tuple[int, int], step: float = 2.0) -> list[np.ndarray]:
    """A camera drifting right over a photograph (scaled to cover the frame), `step` pixels a frame."""
    width, height = size
    reach = width + math.ceil(frames * step) + 8
    scale = max(reach / pixels.shape[1], (height + 8) / pixels.shape[0])
    still = Image.fromarray(pixels).resize((math.ceil(pixels.shape[1] * scale), math.ceil(pixels.shape[0] * scale)),
                                           Image.Resampling.LANCZOS)
    top = (still.height - height) // 2
    return [np.asarray(still.crop((round(i * step), top, round(i * step) + width, top + height))) for i in range(frames)]


def portrait_drift(pixels: np.ndarray, frames: int, size: tuple[int, int], step: float = 2.0) -> list[np.ndarray]:
    """A portrait, scaled to the frame's height, sliding right over a grey backdrop."""
    width, height = size
    person = Image.fromarray(pixels)
    person = person.resize((round(person.width * height / person.height), height), Image.Resampling.LANCZOS)
    backdrop = Image.fromarray(np.tile(np.linspace(60, 190, width, dtype=np.uint8)[None, :, None], (height, 1, 3)))
    moving = []
    for i in range(frames):
        frame = backdrop.copy()
        frame.paste(person, ((width - person.width) // 2 - round(frames * step / 2) + round(i * step), 0))
        moving.append(np.asarray(frame))
    return moving


def crossfade(first: list[np.ndarray], second: list[np.ndarray], frames: int) -> list[np.ndarray]:
    blend = [((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.uint8)
             for t, a, b in zip(np.linspace(0, 1, frames), first[-frames:], second[:frames], strict=True)]
    return first[:-frames] + blend + second[frames:]


def clips(seconds: float) -> dict[str, bytes]:
    size, count = ASKED.size(), round(seconds * FPS)
    moving = {name: (portrait_drift if name in PORTRAITS else drift)(photograph(name), count, size) for name in CLEAN}
    astronaut = moving["astronaut"]
    half = count // 2
    made = {f"clean {name}": video.encode(frames, FPS) for name, frames in moving.items()}
    made |= {
        "frozen": video.encode(astronaut[:half] + [astronaut[half - 1]] * (count - half), FPS),
        "black frames": video.encode([np.zeros_like(f) if half <= i < half + 3 else f for i, f in enumerate(astronaut)],
                                     FPS),
        "flicker": video.encode([np.clip(f * (1.1 if i % 2 else 0.9), 0, 255).astype(np.uint8)
                                 for i, f in enumerate(astronaut)], FPS),
        "still as a clip": video.encode([astronaut[0]] * count, FPS),
        "face changes": video.encode(crossfade(astronaut[: half + 6], moving["grace"][half - 6:], 12), FPS),
        "too short": video.encode(astronaut[: count // 2], FPS),
        "4:3": video.encode(drift(photograph("coffee"), count, (640, 480)), FPS),
        "not a clip": b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64,
    }
    return made


def score(scorer: Scorer, data: list[bytes], tiered: bool) -> tuple[list[ImageVerdict], float]:
    width, height = ASKED.size()
    request = ClipRequest(duration_s=ASKED.duration_s, width=width, height=height, fps=ASKED.fps)
    profile = load_profile("video")
    started = time.process_time()
    verdicts = scorer.score(data, Scoring(profile=profile, requested_clip=request, tiered=tiered))
    return verdicts, time.process_time() - started


def same(tiered: ImageVerdict, full: ImageVerdict) -> bool:
    return tiered.passed == full.passed and set(tiered.failed) <= set(full.failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="each pass this many times, alternately")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip (the job asks 2 s)")
    args = parser.parse_args()
    made = clips(args.seconds)
    names, data = list(made), list(made.values())
    cpu = {"tiered": 0.0, "every frame": 0.0}
    with Scorer(Equipment(device=torch.device("cpu"))) as sampled, \
            Scorer(Equipment(device=torch.device("cpu"), video_sampling=VideoSampling(frames=None, side=None))) as thorough:
        score(sampled, data[:1], tiered=True)  # models loaded before the clock runs
        score(thorough, data[:1], tiered=False)
        for _ in range(args.rounds):
            tiered, seconds = score(sampled, data, tiered=True)
            cpu["tiered"] += seconds
            full, seconds = score(thorough, data, tiered=False)
            cpu["every frame"] += seconds
    print(f"{len(data)} clips of {args.seconds:g} s, {ASKED.size()[0]}x{ASKED.size()[1]} at {FPS} fps;"
          f" {args.rounds} round(s); profile video")
    print(f"{'clip':<16} {'tiered':<40} {'every frame':<40}")
    for name, one, other in zip(names, tiered, full, strict=True):
        print(f"{name:<16} {verdict_text(one):<40} {verdict_text(other):<40}{'' if same(one, other) else '  DIFFERS'}")
    rates = {mode: len(data) * args.rounds / seconds for mode, seconds in cpu.items()}
    for mode, rate in rates.items():
        print(f"{mode:<12} {cpu[mode]:8.2f} CPU-s  {rate:7.3f} clips per CPU-second")
    agreeing = sum(same(one, other) for one, other in zip(tiered, full, strict=True))
    print(f"video: ratio={rates['tiered'] / rates['every frame']:.1f} same_verdicts={agreeing}/{len(data)}")


def verdict_text(verdict: ImageVerdict) -> str:
    return "passed" if verdict.passed else "failed " + ",".join(verdict.failed)[:33]


if __name__ == "__main__":
    run_stoppable(main)
