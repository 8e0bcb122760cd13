"""How well each invisible watermark tried survives what happens to images in the wild, what it
costs, and how visible it is, over the five kinds of picture of bench/watermark_set.py
(photographs, flat illustrations, product shots on white and on black, text-heavy graphics), each
at 256, 512, 1024 and 2048 pixels on its longer side (`--per-kind` pictures of each; all 15
photographs at 1024 pixels, where today's figures were read).

For every picture and method: a random 48-bit mark embedded, the image transformed, and the mark
detected again. The transformations: JPEG 90/75/50, WebP 80, resized to 50 % and 25 % (not
restored), 10 % and 25 % cropped from the top and left, turned 2 degrees, brighter with more
contrast, a social network's pipeline (resized to 1080 pixels wide, JPEG 80, metadata gone), and
combinations of them. A copy under 96 pixels a side (a 256-pixel picture at a quarter) cannot
carry a mark and is not counted: its cell reads `-`.

* bits: the share of the payload bits read right (for the tiled marks, the 72 message bits as
  decoded; a reading whose pilot did not stand out counts as a guess, half right); ids: the
  share of pictures whose mark id came back whole, which is what attributes a file;
* PSNR of the marked picture against the original; on its flat fields (where the original's
  luminance varies by under a level over 5x5 pixels: a sweep, a sky, a page, a flat colour), the
  mark's RMS in levels and the share of pixels it changes by more than the eye's threshold there
  (Chou and Li's luminance-adaptation JND, 1995: 3 levels at mid grey, more towards black and white);
* false positive: of the detections on pictures never marked (each under every transformation,
  and random crops and resizes of them), the share that reported a mark id;
* embed and detect: CPU milliseconds per megapixel, over the photographs at 1024 pixels as marked
  (detect also on the 25 % crops, where the tiled marks search the lattice: ms per image).

Prints a table per method (a row per kind and size), then, last, for the method delivery uses,
one line: today's figures over the photographs at 1024 pixels, then the flat pictures' (every kind
but photographs, every size) and the small pictures' (512 pixels, every kind):
`watermark: method=<> jpeg75_bits=<> resize50_bits=<> resize25_bits=<> crop10_bits=<> social_bits=<>
flat_jpeg50_bits=<> flat_webp80_bits=<> small_resize25_bits=<> false_positive=<> embed_ms_per_mp=<>
detect_ms_per_mp=<>`.

    python bench/watermark.py [--per-kind N] [--sizes 256,512,...] [--methods tiles.2,tiles.1,dwtDctSvd,dwtDct] [--crops N]
"""

import argparse
import io
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.watermark_set import KINDS, photo_paths, picture  # noqa: E402
from genline_stack.stopping import run_stoppable  # noqa: E402
from services.common import watermark, watermark_dwt  # noqa: E402

CHOSEN = watermark.CURRENT.algorithm.removeprefix("com.genline.watermark.")  # what delivery embeds
SIZES = (256, 512, 1024, 2048)
TIMED_SIZE = 1024  # the size delivered images mostly have: today's figures are read there
SMALL_SIZE = 512  # the platform's own pictures' size, the smallest whose quarter still carries a mark
PHOTOGRAPHS = photo_paths()  # every one of them at TIMED_SIZE, as today's figures were read
Pixels = np.ndarray


def encoded(pixels: Pixels, pil_format: str, quality: int) -> Pixels:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=pil_format, quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        return np.asarray(opened.convert("RGB"))


def resized(pixels: Pixels, share: float) -> Pixels:
    image = Image.fromarray(pixels)
    size = (max(1, round(image.width * share)), max(1, round(image.height * share)))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC))


def cropped(pixels: Pixels, share: float) -> Pixels:
    height, width = pixels.shape[:2]
    return pixels[round(height * share):, round(width * share):]


def turned(pixels: Pixels, degrees: float) -> Pixels:
    return np.asarray(Image.fromarray(pixels).rotate(degrees, Image.Resampling.BICUBIC))


def brighter(pixels: Pixels) -> Pixels:
    return np.clip(pixels.astype(np.float64) * 1.2 - 15, 0, 255).astype(np.uint8)


def social(pixels: Pixels) -> Pixels:
    """A social network's pipeline: 1080 pixels wide, JPEG 80, nothing of the metadata kept."""
    image = Image.fromarray(pixels)
    image = image.resize((1080, round(image.height * 1080 / image.width)), Image.Resampling.LANCZOS)
    return encoded(np.asarray(image), "JPEG", 80)


ATTACKS: dict[str, Callable[[Pixels], Pixels]] = {
    "none": lambda p: p,
    "jpeg90": lambda p: encoded(p, "JPEG", 90),
    "jpeg75": lambda p: encoded(p, "JPEG", 75),
    "jpeg50": lambda p: encoded(p, "JPEG", 50),
    "webp80": lambda p: encoded(p, "WEBP", 80),
    "resize50": lambda p: resized(p, 0.5),
    "resize25": lambda p: resized(p, 0.25),
    "crop10": lambda p: cropped(p, 0.1),
    "crop25": lambda p: cropped(p, 0.25),
    "rotate2": lambda p: turned(p, 2),
    "bright": brighter,
    "social": social,
    "resize50+jpeg75": lambda p: encoded(resized(p, 0.5), "JPEG", 75),
    "crop10+social": lambda p: social(cropped(p, 0.1)),
    "rotate2+crop10+jpeg75": lambda p: encoded(cropped(turned(p, 2), 0.1), "JPEG", 75),
    "resize25+jpeg50": lambda p: encoded(resized(p, 0.25), "JPEG", 50),
}


def random_crop(pixels: Pixels, rng: random.Random) -> Pixels:
    """A crop of 30 to 90 % of each side at a random place, half the time resized too."""
    height, width = pixels.shape[:2]
    crop_h, crop_w = round(height * rng.uniform(0.3, 0.9)), round(width * rng.uniform(0.3, 0.9))
    top, left = rng.randrange(height - crop_h + 1), rng.randrange(width - crop_w + 1)
    part = pixels[top:top + crop_h, left:left + crop_w]
    return resized(part, rng.uniform(0.4, 1.2)) if rng.random() < 0.5 else part


# ---- the methods: embed a mark id; detect one, with the share of bits read right -------------

Detector = Callable[[Pixels, int], tuple[int | None, float]]


def tiles(scheme: watermark.Scheme) -> tuple[Callable[[Pixels, int], Pixels], Detector]:
    def detect(pixels: Pixels, mark_id: int) -> tuple[int | None, float]:
        found = watermark.detect(pixels)
        if not found.bits:
            return found.mark_id, 0.5
        truth = np.array(watermark.message_bits(mark_id))
        return found.mark_id, float(np.mean(np.array(found.bits) == truth))

    return (lambda pixels, mark_id: watermark.embed(pixels, mark_id, scheme=scheme)), detect


def dwt(method: watermark_dwt.Method) -> tuple[Callable[[Pixels, int], Pixels], Detector]:
    def detect(pixels: Pixels, mark_id: int) -> tuple[int | None, float]:
        found = watermark_dwt.detect(pixels, method)
        if not found.bits:
            return found.mark_id, 0.5
        truth = watermark_dwt.payload_bits(mark_id)
        shifts = watermark_dwt._untiled(np.array(found.bits, dtype=float))
        return found.mark_id, max(float(np.mean(shifted == truth)) for shifted in shifts)

    return (lambda pixels, mark_id: watermark_dwt.embed(pixels, mark_id, method=method)), detect


METHODS = {
    **{scheme.algorithm.removeprefix("com.genline.watermark."): tiles(scheme) for scheme in watermark.SCHEMES},
    "dwtDctSvd": dwt("dwtDctSvd"),
    "dwtDct": dwt("dwtDct"),
}


# ---- what the eye sees ----------------------------------------------------------------------


def luma(pixels: Pixels) -> np.ndarray:
    return pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def jnd(background: np.ndarray) -> np.ndarray:
    """Chou and Li's visibility threshold (levels) of a change on a flat field of this luminance."""
    dark = 17 * (1 - np.sqrt(background / 127)) + 3
    return np.where(background <= 127, dark, 3 / 128 * (background - 127) + 3)


@dataclass(frozen=True)
class Visibility:
    psnr: float
    flat_rms: float | None  # None: the picture has no flat field
    over_jnd: float | None


def visibility(original: Pixels, marked: Pixels) -> Visibility:
    error = np.mean((original.astype(np.float64) - marked.astype(np.float64)) ** 2)
    psnr = float(10 * np.log10(255 ** 2 / error)) if error else float("inf")
    before, after = luma(original), luma(marked)
    mean = cv2.blur(before, (5, 5))
    spread = np.sqrt(np.maximum(cv2.blur(before * before, (5, 5)) - mean * mean, 0))
    flat = spread < 1.0
    if not flat.any():
        return Visibility(psnr, None, None)
    change = (after - before)[flat]
    return Visibility(psnr, float(np.sqrt(np.mean(change ** 2))), float(np.mean(np.abs(change) > jnd(mean[flat]))))


# ---- the measure -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What one method did on the pictures of one kind and size."""

    bits: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ATTACKS})
    ids: dict[str, list[bool]] = field(default_factory=lambda: {name: [] for name in ATTACKS})
    seen: list[Visibility] = field(default_factory=list)
    embed_s: float = 0.0
    detect_s: float = 0.0
    megapixels: float = 0.0
    cropped_detect_s: list[float] = field(default_factory=list)


@dataclass
class Strangers:
    """Detections on pictures never marked."""

    readings: int = 0
    false_positives: int = 0
    pilot_stood_out: int = 0  # tiled marks: readings that reached the CRC check


def marked_copies(method: str, pixels: Pixels, *, mark_id: int, tally: Tally) -> None:
    embed, detect = METHODS[method]
    started = time.process_time()
    marked = embed(pixels, mark_id)
    tally.embed_s += time.process_time() - started
    tally.megapixels += pixels.shape[0] * pixels.shape[1] / 1e6
    tally.seen.append(visibility(pixels, marked))
    for attack_name, attack in ATTACKS.items():
        copy = attack(marked)
        if not watermark.can_carry(copy.shape[1], copy.shape[0]):
            continue
        started = time.process_time()
        found, share = detect(copy, mark_id)
        spent = time.process_time() - started
        if attack_name == "none":
            tally.detect_s += spent
        if attack_name == "crop25":
            tally.cropped_detect_s.append(spent)
        tally.bits[attack_name].append(share)
        tally.ids[attack_name].append(found == mark_id)


def stranger_copies(method: str, pixels: Pixels, *, crops: int, rng: random.Random, strangers: Strangers) -> None:
    _, detect = METHODS[method]
    copies = [attack(pixels) for attack in ATTACKS.values()] + [random_crop(pixels, rng) for _ in range(crops)]
    for copy in copies:
        if not watermark.can_carry(copy.shape[1], copy.shape[0]):
            continue
        strangers.readings += 1
        strangers.false_positives += detect(copy, 0)[0] is not None
        strangers.pilot_stood_out += watermark.detect(copy).strength >= watermark.MIN_STRENGTH


def measure(method: str, *, sizes: list[int], per_kind: int, crops: int) -> tuple[dict[tuple[str, int], Tally], Strangers]:
    embed, detect = METHODS[method]
    detect(embed(picture("photo", 512, 0), 1), 1)  # tables and caches built before anything is timed
    rng, tallies, strangers = random.Random(53), {}, Strangers()
    for kind in KINDS:
        for side in sizes:
            tally = tallies[kind, side] = Tally()
            for index in range(len(PHOTOGRAPHS) if (kind, side) == ("photo", TIMED_SIZE) else per_kind):
                pixels = picture(kind, side, index)
                marked_copies(method, pixels, mark_id=rng.getrandbits(watermark.MARK_ID_BITS), tally=tally)
                if method == CHOSEN:
                    stranger_copies(method, pixels, crops=crops, rng=rng, strangers=strangers)
    return tallies, strangers


def mean_or_dash(values: list[float], width: int = 5, *, digits: int = 3) -> str:
    return f"{np.mean(values):.{digits}f}".rjust(width) if values else "-".rjust(width)


def print_table(method: str, tallies: dict[tuple[str, int], Tally]) -> None:
    print(f"\n{method}: each cell bits read right / mark ids recovered")
    print(f"{'kind':<6} {'side':>5} " + " ".join(f"{name[:11]:>11}" for name in ATTACKS)
          + f" {'PSNR dB':>8} {'flat RMS':>9} {'over JND':>9} {'embed ms/MP':>12} {'detect ms/MP':>13} {'crop25 ms':>10}")
    for (kind, side), tally in tallies.items():
        cells = " ".join(f"{mean_or_dash(tally.bits[a])}/{mean_or_dash(tally.ids[a], digits=2):<5}" for a in ATTACKS)
        flat_rms = [seen.flat_rms for seen in tally.seen if seen.flat_rms is not None]
        over = [seen.over_jnd for seen in tally.seen if seen.over_jnd is not None]
        print(f"{kind:<6} {side:>5} {cells} {np.mean([seen.psnr for seen in tally.seen]):>8.1f}"
              f" {mean_or_dash(flat_rms, 9, digits=2)} {(f'{np.mean(over):.2%}' if over else '-'):>9}"
              f" {tally.embed_s / tally.megapixels * 1000:>12.1f} {tally.detect_s / tally.megapixels * 1000:>13.1f}"
              f" {np.median(tally.cropped_detect_s) * 1000 if tally.cropped_detect_s else 0:>10.1f}")


def pooled(tallies: dict[tuple[str, int], Tally], attack: str, *, kinds: tuple[str, ...], sizes: tuple[int, ...]) -> str:
    values = [share for (kind, side), tally in tallies.items() if kind in kinds and side in sizes for share in tally.bits[attack]]
    return mean_or_dash(values).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=4, help="pictures of each kind at each size")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="longer sides, in pixels")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"of {', '.join(METHODS)}")
    parser.add_argument("--crops", type=int, default=4, help="random crops of each picture never marked")
    args = parser.parse_args()
    sizes = [int(side) for side in args.sizes.split(",")]
    methods = [name for name in args.methods.split(",") if name]
    if CHOSEN not in methods:
        methods.insert(0, CHOSEN)
    results = {method: measure(method, sizes=sizes, per_kind=args.per_kind, crops=args.crops) for method in methods}
    print(f"{args.per_kind} pictures of each kind at each size: {', '.join(KINDS)}")
    for method, (tallies, _) in results.items():
        print_table(method, tallies)
    chosen, strangers = results[CHOSEN]
    share = strangers.pilot_stood_out / max(strangers.readings, 1)
    tries = len(watermark.SCHEMES) * (1 + 2 * watermark.TRIED_LATTICES)  # as written, then each lattice found
    print(f"\n{CHOSEN} on pictures never marked: {strangers.false_positives} of {strangers.readings} readings named a mark;"
          f" the pilot stood out in {strangers.pilot_stood_out}, and each such reading names one only if a CRC-24 holds"
          f" by chance (2^-24), tried at most {tries} ways: false positives about {share * tries / 2**24:.1e}")
    photos, flat, timed, small = ("photo",), tuple(kind for kind in KINDS if kind != "photo"), (TIMED_SIZE,), (SMALL_SIZE,)
    timed_tally = chosen.get(("photo", TIMED_SIZE), Tally())
    megapixels = max(timed_tally.megapixels, 1e-9)
    print(f"watermark: method={CHOSEN}"
          + "".join(f" {attack}_bits={pooled(chosen, attack, kinds=photos, sizes=timed)}"
                    for attack in ("jpeg75", "resize50", "resize25", "crop10", "social"))
          + f" flat_jpeg50_bits={pooled(chosen, 'jpeg50', kinds=flat, sizes=tuple(sizes))}"
          f" flat_webp80_bits={pooled(chosen, 'webp80', kinds=flat, sizes=tuple(sizes))}"
          f" small_resize25_bits={pooled(chosen, 'resize25', kinds=KINDS, sizes=small)}"
          f" false_positive={strangers.false_positives / max(strangers.readings, 1):.4f}"
          f" embed_ms_per_mp={timed_tally.embed_s / megapixels * 1000:.1f}"
          f" detect_ms_per_mp={timed_tally.detect_s / megapixels * 1000:.1f}")


if __name__ == "__main__":
    run_stoppable(main)
