"""How well the invisible watermark survives what happens to images in the wild, for each
method tried, over real photographs (scikit-image's and matplotlib's sample photographs,
bundled in their wheels; the grey ones as RGB), each scaled to at most 768 pixels a side.

For every photograph and method: a random 48-bit mark embedded, the image transformed (JPEG
90/75/50, WebP 80, resized to 50 % and 75 %, 10 % cropped from the top and left), and
detected again:

* bits: the share of the 64 payload bits read right (the tile's best cyclic shift, as
  detection aligns it); ids: the share of images whose mark id came back whole;
* false positive: the share of detections on the same photographs unmarked (each under
  every transformation) that reported a mark id at all.

Prints one table, the PSNR of each method, and last, for the method delivery uses:
`watermark: method=<> jpeg75_bits=<share> webp80_bits=<share> false_positive=<share>`.

    python bench/watermark.py [--limit N]
"""

import argparse
import io
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.common import watermark  # noqa: E402

CHOSEN = "dwtDctSvd"  # what services/delivery/provenance.py embeds
METHODS: tuple[watermark.Method, ...] = ("dwtDctSvd", "dwtDct")
MAX_SIDE = 768


def photographs() -> list[tuple[str, np.ndarray]]:
    import matplotlib
    import skimage

    skimage_data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "motorcycle_left.png",
             "motorcycle_right.png", "retina.jpg", "rocket.jpg", "ihc.png", "camera.png", "moon.png", "brick.png",
             "grass.png", "gravel.png"]
    paths = [skimage_data / name for name in names]
    paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    photos = []
    for path in paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        photos.append((path.stem, np.asarray(image)))
    return photos


def encoded(pixels: np.ndarray, pil_format: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=pil_format, quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        return np.asarray(opened.convert("RGB"))


def resized(pixels: np.ndarray, share: float) -> np.ndarray:
    image = Image.fromarray(pixels)
    size = (round(image.width * share), round(image.height * share))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC))


def cropped(pixels: np.ndarray, share: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    return pixels[round(height * share):, round(width * share):]


ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda p: p,
    "jpeg90": lambda p: encoded(p, "JPEG", 90),
    "jpeg75": lambda p: encoded(p, "JPEG", 75),
    "jpeg50": lambda p: encoded(p, "JPEG", 50),
    "webp80": lambda p: encoded(p, "WEBP", 80),
    "resize50": lambda p: resized(p, 0.5),
    "resize75": lambda p: resized(p, 0.75),
    "crop10": lambda p: cropped(p, 0.1),
}


def bits_right(found: watermark.Detection, mark_id: int) -> float:
    if not found.bits:
        return 0.0
    truth = watermark.payload_bits(mark_id)
    return max(float(np.mean(shifted == truth)) for shifted in watermark._untiled(np.array(found.bits, dtype=float)))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255 ** 2 / error)) if error else float("inf")


def measure(method: watermark.Method, photos: list[tuple[str, np.ndarray]], rng: random.Random) -> dict:
    bits: dict[str, list[float]] = {name: [] for name in ATTACKS}
    ids: dict[str, list[bool]] = {name: [] for name in ATTACKS}
    false_positives, trials, quality = 0, 0, []
    for _, pixels in photos:
        mark_id = rng.getrandbits(watermark.MARK_ID_BITS)
        marked = watermark.embed(pixels, mark_id, method)
        quality.append(psnr(pixels, marked))
        for name, attack in ATTACKS.items():
            found = watermark.detect(attack(marked), method)
            bits[name].append(bits_right(found, mark_id))
            ids[name].append(found.mark_id == mark_id)
            unmarked = watermark.detect(attack(pixels), method)
            false_positives += unmarked.mark_id is not None
            trials += 1
    return {"bits": {k: float(np.mean(v)) for k, v in bits.items()},
            "ids": {k: float(np.mean(v)) for k, v in ids.items()},
            "false_positive": false_positives / trials, "trials": trials, "psnr": float(np.mean(quality))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="the first N photographs only")
    args = parser.parse_args()
    photos = photographs()[: args.limit]
    results = {method: measure(method, photos, random.Random(53)) for method in METHODS}
    print(f"{len(photos)} photographs (at most {MAX_SIDE} px a side); bits read right / mark ids recovered")
    print(f"{'method':<10} {'PSNR dB':>8} " + " ".join(f"{name:>13}" for name in ATTACKS) + f" {'false pos.':>11}")
    for method, result in results.items():
        cells = " ".join(f"{result['bits'][n]:>6.3f}/{result['ids'][n]:<6.2f}" for n in ATTACKS)
        print(f"{method:<10} {result['psnr']:>8.1f} {cells} {result['false_positive']:>6.3f} of {result['trials']}")
    chosen = results[CHOSEN]
    print(f"watermark: method={CHOSEN} jpeg75_bits={chosen['bits']['jpeg75']:.3f}"
          f" webp80_bits={chosen['bits']['webp80']:.3f} false_positive={chosen['false_positive']:.3f}")


if __name__ == "__main__":
    main()
