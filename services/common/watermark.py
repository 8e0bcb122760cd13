"""The invisible watermark, without I/O: a 48-bit mark id hidden in an image's luminance (or a
clip's frames), found again after the metadata is gone, the file recompressed, resized and not
restored, cropped, turned a little, or made brighter.

How it is written (`embed`): the luminance is scaled to a fixed `SIDE` x `SIDE` plane, whatever
the image's size; a tile that carries the payload once (services/common/watermark_code.py: the
id, a CRC-24, a convolutional code, on carriers of distinct frequencies) is repeated over that
plane, weighted by how much detail each place has to hide it in, scaled back to the image's size
and added to its red, green and blue alike. The mark is thus drawn at the image's own scale:
resizing the image resizes the mark with it, and the detector, which scales to the same plane,
sees the same tiles. (TrustMark's way of surviving resizes, arXiv 2311.18297, with no network:
the payload is a spread-spectrum tile, the synchronization its repetition.)

How it is read (`detect`): the image scaled to the same plane and whitened, the tiles found
(services/common/watermark_sync.py: where they were written, else the lattice the plane's
autocorrelation shows, which a crop or a rotation moved), folded into one tile, its pilot
located, and the bits read and decoded. A detection names a mark id only when the pilot stands
out (`MIN_STRENGTH`) and the CRC-24 holds: a photograph never marked passes both about once in
2^24 readings tried (a few per image), which is the false-positive rate. A clip's frames are read
together (`detect_frames`): the mark is the same in each, the pictures are not.

`ALGORITHM` names the method in a manifest's soft binding (`c2pa.soft-binding`); the files
delivered before it carry `watermark_dwt`'s mark, which `POST /v1/verify` still reads.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from services.common import watermark_code
from services.common.watermark_code import MARK_ID_BITS as MARK_ID_BITS
from services.common.watermark_code import TILE
from services.common.watermark_sync import IDENTITY, SIDE, box, fold, lattices, located, normalized_luma, whitened

METHOD = "tiles"
ALGORITHM = "com.genline.watermark.tiles.1"
# Luminance levels added where the mask is 1 (an image of ordinary detail): chosen on
# bench/watermark.py's figures (about 41.7 dB PSNR on photographs; every transformation it
# tries still read, but a resize to a quarter followed by JPEG 50, and crops and turns of pure
# textures).
STRENGTH = 2.6
# The mask: the local detail (the RMS of the luminance less its 3x3 mean) over MASK_SCALE,
# held between these bounds: more where detail hides it, never nothing where the image is flat.
# A wider mask (0.5 to 2.5) read no more marks at 2.5 dB less; none at all (1 everywhere) lost
# resizes to a quarter and crops on two photographs more: the detector weighs each place by its
# own detail, so a mark heaped on texture counts for little.
MASK_SCALE, MASK_FLOOR, MASK_CEILING = 6.0, 0.6, 1.6
SMALL_BOOST = 2.0
# Smaller images cannot hold the tile's frequencies: their highest would fold over.
MIN_SIDE = 96
# The pilot's correlation peak, in spreads above the mean, a reading must reach before its bits
# are decoded (an unmarked image reaches 3 to 4.5; a marked one 6 to 12 after most edits).
MIN_STRENGTH = 4.0
TRIED_LATTICES = 2


def mark_hex(mark_id: int) -> str:
    """A mark id as delivery records it and `POST /v1/verify` shows it: 12 hex digits."""
    return f"{mark_id:012x}"


def can_carry(width: int, height: int) -> bool:
    return min(width, height) >= MIN_SIDE


def mask(plane: np.ndarray) -> np.ndarray:
    detail = plane - box(plane, 1)
    activity = np.sqrt(np.maximum(box(detail * detail, 2), 0.0))
    weights: np.ndarray = np.clip(activity / MASK_SCALE, MASK_FLOOR, MASK_CEILING)
    return weights


def embed(rgb: np.ndarray, mark_id: int, *, strength: float = STRENGTH) -> np.ndarray:
    """`rgb` (H x W x 3, uint8) with `mark_id` hidden in its luminance."""
    height, width = rgb.shape[:2]
    assert can_carry(width, height), "image too small to carry a watermark"
    # A side under SIDE holds fewer samples of the mark, and not its highest carriers: up to
    # twice as strong there (a thumbnail, a poster).
    strength *= min(SMALL_BOOST, max(1.0, SIDE / min(height, width)))
    plane = normalized_luma(rgb)
    pattern = np.tile(watermark_code.tile_of(mark_id), (SIDE // TILE, SIDE // TILE))
    residual = (strength * mask(plane) * pattern).astype(np.float32)
    if min(width, height) >= SIDE:
        # Scaled up: OpenCV's bilinear is PIL's there, and its saturating add rounds as np.rint
        # would; the same pixels at 11 ms a megapixel instead of 27 (three passes fewer).
        scaled = cv2.resize(residual, (width, height), interpolation=cv2.INTER_LINEAR)
        return cv2.add(np.ascontiguousarray(rgb), cv2.merge([scaled, scaled, scaled]), dtype=cv2.CV_8U)
    # Scaled down in a side (a thumbnail): PIL's bilinear averages over the samples it drops.
    scaled = np.asarray(Image.fromarray(residual, "F").resize((width, height), Image.Resampling.BILINEAR))
    marked = rgb.astype(np.int16)
    marked += np.rint(scaled).astype(np.int16)[..., None]
    np.clip(marked, 0, 255, out=marked)
    return marked.astype(np.uint8)


@dataclass
class Embedding:
    """One mark id embedded into every picture given (a still, a thumbnail, a clip's frames),
    counting the CPU it spent and the megapixels it marked: what delivery reports as the
    watermark's cost a megapixel. `boost` scales the strength (a clip's frames take more)."""

    mark_id: int
    cpu_s: float = 0.0
    megapixels: float = 0.0

    def __call__(self, rgb: np.ndarray, boost: float = 1.0) -> np.ndarray:
        started = time.process_time()
        marked = embed(rgb, self.mark_id, strength=STRENGTH * boost)
        self.cpu_s += time.process_time() - started
        self.megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
        return marked


@dataclass(frozen=True)
class Detection:
    """What `detect` found: the mark id (None when no reading's check held), how strongly the
    pilot stood out (`strength`; `confidence` maps it from 0, unmarked, to 1, clearly marked), and
    the 72 message bits of the best reading (the id, then its check)."""

    mark_id: int | None
    strength: float
    bits: tuple[int, ...] = ()

    @property
    def confidence(self) -> float:
        return round(float(np.clip((self.strength - MIN_STRENGTH) / 6.0, 0.0, 1.0)), 4)


NOTHING = Detection(None, 0.0)


def reach(height: int, width: int) -> tuple[float, float]:
    """The highest carrier frequencies (cycles a tile, down and across) an image of this size
    holds: nine tenths of its Nyquist frequency, in the plane's terms; all of them from SIDE up."""
    return tuple(0.45 * TILE * min(1.0, side / SIDE) for side in (height, width))  # type: ignore[return-value]


def _reading(plane: np.ndarray, mapping: np.ndarray, *, within: tuple[float, float]) -> Detection:
    """The plane folded by one tile map, its pilot located and, where it stands out, its bits decoded."""
    tile = fold(plane, mapping)
    found = located(tile, within)
    if found.strength < MIN_STRENGTH:
        return Detection(None, found.strength)
    bits = watermark_code.decode(watermark_code.soft_bits(tile, found.shift, reach=within))
    return Detection(watermark_code.mark_id_of(bits), found.strength, tuple(int(b) for b in bits))


def detect_plane(plane: np.ndarray, within: tuple[float, float] = (SIDE, SIDE)) -> Detection:
    """The mark in a whitened SIDE x SIDE plane, reading the carriers `within` reach: where the
    tiles were written, then, failing that, along the likeliest lattices its autocorrelation shows
    (a crop, a rotation)."""
    best = _reading(plane, IDENTITY, within=within)
    if best.mark_id is not None:
        return best
    for mapping in lattices(plane, TRIED_LATTICES):
        reading = _reading(plane, mapping, within=within)
        if reading.mark_id is not None:
            return reading
        best = max(best, reading, key=lambda detection: detection.strength)
    return best


def detect(rgb: np.ndarray) -> Detection:
    """The mark in `rgb` (H x W x 3, uint8), if any."""
    if not can_carry(rgb.shape[1], rgb.shape[0]):
        return NOTHING
    return detect_plane(whitened(normalized_luma(rgb)), reach(*rgb.shape[:2]))


def detect_frames(frames: Iterable[np.ndarray]) -> Detection:
    """The mark of a clip (or an animated image), read from its frames together: their whitened
    planes are averaged, so the mark, the same in each, adds up and the pictures do not."""
    pictures = [rgb for rgb in frames if can_carry(rgb.shape[1], rgb.shape[0])]
    if not pictures:
        return NOTHING
    planes = [whitened(normalized_luma(rgb)) for rgb in pictures]
    return detect_plane(np.mean(planes, axis=0), reach(*pictures[0].shape[:2]))


def message_bits(mark_id: int) -> tuple[int, ...]:
    """The 72 message bits written for a mark id, as `Detection.bits` reads them back."""
    return tuple(int(bit) for bit in watermark_code.message(mark_id))
